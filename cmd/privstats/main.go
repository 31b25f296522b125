// Command privstats runs the roles of a privstats deployment (tally server,
// share keeper, collector) and the tools researchers and operators use around
// them.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "privstats: not yet implemented")
	os.Exit(2)
}
