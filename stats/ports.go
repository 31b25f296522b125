package stats

// Port classes of exit streams, after PrivCount's: web browsing, interactive
// sessions, peer-to-peer file sharing, and everything else. They are the
// categories of the exit_streams_by_port statistics, in this order.
const (
	PortWeb = iota
	PortInteractive
	PortP2P
	PortOther
	numPortClasses
)

var portClassNames = []string{"web", "interactive", "p2p", "other"}

// portClass is indexed by port number.
var portClass [65536]uint8

func init() {
	for p := range portClass {
		portClass[p] = PortOther
	}
	set := func(class uint8, ranges ...[2]int) {
		for _, r := range ranges {
			for p := r[0]; p <= r[1]; p++ {
				portClass[p] = class
			}
		}
	}
	set(PortWeb, [2]int{80, 80}, [2]int{443, 443})
	set(PortInteractive,
		[2]int{22, 23},     // SSH, telnet
		[2]int{194, 194},   // IRC
		[2]int{994, 994},   // IRC over TLS
		[2]int{5222, 5223}, // XMPP clients
		[2]int{6660, 6669}, // IRC
		[2]int{6679, 6679}, // IRC over TLS
		[2]int{6697, 6697}, // IRC over TLS
		[2]int{7000, 7001}) // IRC
	set(PortP2P,
		[2]int{1214, 1214},   // FastTrack (Kazaa)
		[2]int{4661, 4666},   // eDonkey
		[2]int{6346, 6429},   // Gnutella
		[2]int{6699, 6699},   // WinMX
		[2]int{6881, 6999},   // BitTorrent
		[2]int{45682, 45682}, // BitTorrent (Vuze)
		[2]int{51413, 51413}) // BitTorrent (Transmission)
}

// PortClass returns the class of an exit stream's remote port: PortWeb,
// PortInteractive, PortP2P or PortOther.
func PortClass(port uint16) int { return int(portClass[port]) }

// PortClassName returns the category label of a port class.
func PortClassName(class int) string { return portClassNames[class] }
