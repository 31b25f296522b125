package torctl_test

import (
	"context"
	"fmt"
	"log"

	"github.com/privstats/privstats/torctl"
)

func ExampleParseORConn() {
	var ev torctl.ORConnEvent // reused for every event: no allocations
	line := []byte("650 ORCONN $0EB7C8AAD759B26D37B857E7080FD2B138B75A1C~relay1 CLOSED REASON=DONE NCIRCS=3 ID=12")
	if err := torctl.ParseORConn(line, &ev); err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.Status, ev.IsRelay(), string(ev.Nickname), ev.NCircs)
	// Output: CLOSED true relay1 3
}

func ExampleEventType() {
	for _, l := range []string{"650 BW 155 593", "650 CONN_BW ID=5 TYPE=EXIT READ=1234 WRITTEN=567", "650 TB_EMPTY GLOBAL"} {
		fmt.Println(torctl.EventType([]byte(l)))
	}
	// Output:
	// BW
	// CONN_BW
	// UNKNOWN
}

// A collector keeps one Session per tor and hands events to its
// counters; gaps go into its report.
func ExampleSession() {
	var bw torctl.BWEvent
	s := torctl.NewSession(torctl.SessionConfig{
		Network: "unix",
		Address: "/run/tor/control",
		Auth:    torctl.AuthOptions{Allowed: []torctl.AuthMethod{torctl.AuthSafeCookie}},
		Events:  []string{"BW", "ORCONN", "CONN_BW"},
		OnEvent: func(ev *torctl.Event) {
			if ev.Kind == torctl.EventBW && torctl.ParseBW(ev.Line(), &bw) == nil {
				_ = bw.Read // count it
			}
		},
		OnConnect: func(ctx context.Context, c *torctl.Conn, info torctl.ConnectInfo) error {
			_, err := c.GetInfo(ctx, "fingerprint")
			return err
		},
		OnGap: func(g torctl.Gap) { log.Printf("blind from %v to %v: %v", g.Start, g.End, g.Err) },
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
}
