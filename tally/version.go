package tally

import (
	"net/http"
	"strconv"

	"github.com/privstats/privstats/aggregator/wire"
)

// checkVersion refuses a request from a node that speaks another protocol
// version (wire.ProtocolVersion), which would misread this server's
// messages or it theirs. A request without the header is taken to speak
// this version, so nodes that predate the header keep working.
func (s *Server) checkVersion(next http.Handler) http.Handler {
	want := strconv.Itoa(wire.ProtocolVersion)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if v := req.Header.Get(wire.HeaderVersion); v != "" && v != want {
			s.respond(w, req, 0, refuse(reasonWrongVersion,
				"the node speaks privstats protocol version %q, this tally server speaks %s; run one privstats release on every node", v, want))
			return
		}
		next.ServeHTTP(w, req)
	})
}
