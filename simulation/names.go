package simulation

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// maxPeers bounds the peers of one simulation (hosts 10.0.0.1 …).
const maxPeers = 1000

// peerName is the name of peer i (1-based): n1, n2, …
func peerName(i int) string { return "n" + strconv.Itoa(i) }

// peerIndex parses a peer name n1 … n1000.
func peerIndex(name string) (int, error) {
	s, ok := strings.CutPrefix(name, "n")
	i, err := strconv.Atoi(s)
	if !ok || err != nil || i < 1 || i > maxPeers || strconv.Itoa(i) != s {
		return 0, fmt.Errorf("peer %q: peers are named n1 … n%d", name, maxPeers)
	}
	return i, nil
}

// comparePeerNames orders peer names by number (n2 before n10).
func comparePeerNames(a, b string) int {
	i, erri := peerIndex(a)
	j, errj := peerIndex(b)
	if erri != nil || errj != nil {
		return strings.Compare(a, b)
	}
	return cmp.Compare(i, j)
}
