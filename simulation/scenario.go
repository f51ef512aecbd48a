package simulation

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A scenario is a text file of steps, one a line; '#' starts a comment.
// The first step is `start N`. Peers are named n1 … nN; wherever a peer
// name goes, n{EXPR} computes its number from N (the peer count, which
// --peers may override): N, N/2, N/2+1, N-1, N+1 …; a range nA..nB lists
// the peers from A to B; lists are comma-separated.
//
//	start 5                      start n1 … n5 (each joins the ones before)
//	partition n1,n2 | n3..n5     split the network; `| rest` names the others
//	cut n1 -> n2                 drop traffic from n1 to n2 (one way)
//	cut n1,n2 <-> n4             drop traffic both ways between two sets
//	loss 20%                     lose this share of every link's packets
//	latency 5ms 2ms              delay every link by 5 ms plus up to 2 ms
//	pause n3 10s                 SIGSTOP n3 (network and clock) for 10 s
//	skew n2 500ms [drift 0.001]  set n2's clock ahead (or -500ms behind)
//	crash n2                     kill -9: no leave, disk keeps what was synced
//	restart n2 [--empty]         start it again, with its disk or an empty one
//	leave n4                     leave gracefully, then stop
//	rolling-restart 2s           each running peer in turn leaves, restarts
//	                             with its data dir, then 2 s pass
//	join n6                      start a new peer, joined through peers it reaches
//	heal                         remove every network fault at once
//	wait converged [60s]         wait (bounded) until every running peer agrees
//	wait locks                   wait until no running peer is in its quiet
//	                             period (one lock-delay after it started, when
//	                             it promises nothing and locks are refused)
//	run workload 30s             run the workload clients for 30 s
//	workload start|stop          run them in the background from here to there
//	sleep 2s                     let time pass
//
// Durations are scenario time; they run Speed times faster.

// Step kinds.
const (
	StepStart     = "start"
	StepPartition = "partition"
	StepCut       = "cut"
	StepLoss      = "loss"
	StepLatency   = "latency"
	StepPause     = "pause"
	StepSkew      = "skew"
	StepCrash     = "crash"
	StepRestart   = "restart"
	StepLeave     = "leave"
	StepRolling   = "rolling-restart"
	StepJoin      = "join"
	StepHeal      = "heal"
	StepWait      = "wait"
	StepRun       = "run"
	StepWorkload  = "workload"
	StepSleep     = "sleep"
)

// defaultWaitTimeout bounds `wait converged` without a timeout (scenario
// time).
const defaultWaitTimeout = 60 * time.Second

// maxStepDuration bounds every duration in a scenario.
const maxStepDuration = time.Hour

// Step is one parsed line of a scenario.
type Step struct {
	Line int    `json:"line"`
	Text string `json:"text"` // the line as written, without its comment
	Kind string `json:"kind"`
	// Peers are the step's peers: the started ones (start), the target
	// (pause, skew, crash, restart, leave, join).
	Peers []string `json:"peers,omitempty"`
	// Groups are a partition's groups.
	Groups [][]string `json:"groups,omitempty"`
	// From and To are a cut's sets; Both cuts both ways.
	From []string `json:"from,omitempty"`
	To   []string `json:"to,omitempty"`
	Both bool     `json:"both,omitempty"`
	// Percent is loss's.
	Percent float64 `json:"percent,omitempty"`
	// Duration is pause's, latency's base, wait's timeout, run's, sleep's,
	// skew's skew, rolling-restart's pause after each peer.
	Duration time.Duration `json:"duration,omitempty"`
	// Jitter is latency's.
	Jitter time.Duration `json:"jitter,omitempty"`
	// Drift is skew's.
	Drift float64 `json:"drift,omitempty"`
	// Empty is restart --empty's.
	Empty bool `json:"empty,omitempty"`
	// On is workload start's (false: stop).
	On bool `json:"on,omitempty"`
	// Locks is wait locks' (false: wait converged).
	Locks bool `json:"locks,omitempty"`
}

// Scenario is a parsed scenario.
type Scenario struct {
	Name string `json:"name"`
	// N is the peer count of the start step.
	N int `json:"n"`
	// Peers are every peer the scenario starts or joins, in order.
	Peers []string `json:"peers"`
	Steps []Step   `json:"steps"`
}

// ParseError is a mistake in a scenario, with where it is.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Parse parses a scenario. peers, if positive, replaces the count of its
// start step.
func Parse(name, text string, peers int) (*Scenario, error) {
	sc := &Scenario{Name: name}
	type raw struct {
		line   int
		fields []string
		text   string
	}
	var lines []raw
	for i, l := range strings.Split(text, "\n") {
		if j := strings.IndexByte(l, '#'); j >= 0 {
			l = l[:j]
		}
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		lines = append(lines, raw{line: i + 1, fields: strings.Fields(l), text: l})
	}
	fail := func(line int, format string, args ...any) error {
		return &ParseError{File: name, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	if len(lines) == 0 {
		return nil, fail(1, "empty scenario; begin with `start N`")
	}
	first := lines[0]
	if first.fields[0] != StepStart || len(first.fields) != 2 {
		return nil, fail(first.line, "a scenario begins with `start N` (N peers), not %q", first.text)
	}
	n, err := strconv.Atoi(first.fields[1])
	if err != nil || n < 1 || n > maxPeers {
		return nil, fail(first.line, "start %q: give a peer count 1-%d", first.fields[1], maxPeers)
	}
	if peers > 0 {
		n = peers
	}
	if peers > maxPeers {
		return nil, fail(first.line, "%d peers: at most %d", peers, maxPeers)
	}
	sc.N = n
	known := map[string]bool{}
	for i := 1; i <= n; i++ {
		sc.Peers = append(sc.Peers, peerName(i))
		known[peerName(i)] = true
	}
	// First pass: the joins, so that every step can name any peer of the
	// scenario.
	for _, l := range lines[1:] {
		if l.fields[0] != StepJoin || len(l.fields) != 2 {
			continue
		}
		ps, err := peerSet(l.fields[1], n)
		if err != nil {
			return nil, fail(l.line, "join: %v", err)
		}
		for _, p := range ps {
			if !known[p] {
				known[p] = true
				sc.Peers = append(sc.Peers, p)
			}
		}
	}
	// set parses a peer list and checks every peer is one of the scenario's.
	set := func(line int, s string) ([]string, error) {
		ps, err := peerSet(s, n)
		if err != nil {
			return nil, fail(line, "%v", err)
		}
		for _, p := range ps {
			if !known[p] {
				return nil, fail(line, "peer %s is not in this scenario: start %d makes n1..n%d, and join adds more", p, n, n)
			}
		}
		return ps, nil
	}
	one := func(line int, s string) (string, error) {
		ps, err := set(line, s)
		if err != nil {
			return "", err
		}
		if len(ps) != 1 {
			return "", fail(line, "%q names %d peers; give one", s, len(ps))
		}
		return ps[0], nil
	}
	dur := func(line int, s string, allowNegative bool) (time.Duration, error) {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fail(line, "duration %q: write it like 500ms, 2s or 1m", s)
		}
		if d > maxStepDuration || (allowNegative && d < -maxStepDuration) || (!allowNegative && d <= 0) {
			return 0, fail(line, "duration %q: give more than 0 and at most %v", s, maxStepDuration)
		}
		return d, nil
	}
	sc.Steps = append(sc.Steps, Step{Line: first.line, Text: fmt.Sprintf("start %d", n), Kind: StepStart, Peers: slices.Clone(sc.Peers[:n])})
	for _, l := range lines[1:] {
		f := l.fields
		st := Step{Line: l.line, Text: l.text, Kind: f[0]}
		argc := func(lo, hi int, usage string) error {
			if len(f)-1 < lo || len(f)-1 > hi {
				return fail(l.line, "%s: want `%s`", f[0], usage)
			}
			return nil
		}
		var err error
		switch f[0] {
		case StepStart:
			err = fail(l.line, "start comes once, as the first step; add peers later with `join nK`")
		case StepPartition:
			st.Groups, err = parseGroups(l.line, f[1:], n, set, sc.Peers, fail)
		case StepCut:
			if err = argc(3, 3, "cut A -> B` or `cut A <-> B"); err != nil {
				break
			}
			switch f[2] {
			case "->":
			case "<->":
				st.Both = true
			default:
				err = fail(l.line, "cut: %q: use -> (one way) or <-> (both ways)", f[2])
			}
			if err == nil {
				if st.From, err = set(l.line, f[1]); err == nil {
					st.To, err = set(l.line, f[3])
				}
			}
			if err == nil {
				for _, p := range st.From {
					if slices.Contains(st.To, p) {
						err = fail(l.line, "cut: %s is on both sides", p)
						break
					}
				}
			}
		case StepLoss:
			if err = argc(1, 1, "loss P%"); err != nil {
				break
			}
			p, ok := strings.CutSuffix(f[1], "%")
			v, perr := strconv.ParseFloat(p, 64)
			if !ok || perr != nil || !(v >= 0 && v <= 100) {
				err = fail(l.line, "loss %q: give a percentage 0%%-100%%, like 20%%", f[1])
			}
			st.Percent = v
		case StepLatency:
			if err = argc(1, 2, "latency BASE [JITTER]"); err != nil {
				break
			}
			if f[1] != "0" {
				st.Duration, err = dur(l.line, f[1], false)
			}
			if err == nil && len(f) == 3 {
				st.Jitter, err = dur(l.line, f[2], false)
			}
		case StepPause:
			if err = argc(2, 2, "pause nK DURATION"); err != nil {
				break
			}
			var p string
			if p, err = one(l.line, f[1]); err == nil {
				st.Peers = []string{p}
				st.Duration, err = dur(l.line, f[2], false)
			}
		case StepSkew:
			if err = argc(2, 4, "skew nK OFFSET [drift RATE]"); err != nil {
				break
			}
			var p string
			if p, err = one(l.line, f[1]); err != nil {
				break
			}
			st.Peers = []string{p}
			if f[2] != "0" {
				st.Duration, err = dur(l.line, f[2], true)
			}
			if err == nil && len(f) > 3 {
				if len(f) != 5 || f[3] != "drift" {
					err = fail(l.line, "skew: want `skew nK OFFSET [drift RATE]`")
					break
				}
				st.Drift, err = strconv.ParseFloat(f[4], 64)
				if err != nil || !(st.Drift >= -0.01 && st.Drift <= 0.01) {
					err = fail(l.line, "skew: drift %q: give a rate between -0.01 and 0.01", f[4])
				}
			}
		case StepCrash, StepLeave, StepJoin:
			if err = argc(1, 1, f[0]+" nK"); err != nil {
				break
			}
			var p string
			p, err = one(l.line, f[1])
			st.Peers = []string{p}
		case StepRestart:
			if err = argc(1, 2, "restart nK [--empty]"); err != nil {
				break
			}
			if len(f) == 3 {
				if f[2] != "--empty" {
					err = fail(l.line, "restart: %q: the only option is --empty", f[2])
					break
				}
				st.Empty = true
			}
			var p string
			p, err = one(l.line, f[1])
			st.Peers = []string{p}
		case StepHeal:
			err = argc(0, 0, "heal")
		case StepWait:
			if err = argc(1, 2, "wait converged [TIMEOUT] or wait locks"); err != nil {
				break
			}
			if f[1] == "locks" {
				st.Locks = true
				if len(f) > 2 {
					err = fail(l.line, "wait locks takes no timeout: it waits one lock-delay at most")
				}
				break
			}
			if f[1] != "converged" {
				err = fail(l.line, "wait: %q: the conditions are `converged` and `locks`", f[1])
				break
			}
			st.Duration = defaultWaitTimeout
			if len(f) == 3 {
				st.Duration, err = dur(l.line, f[2], false)
			}
		case StepRun:
			if err = argc(2, 2, "run workload DURATION"); err != nil {
				break
			}
			if f[1] != "workload" {
				err = fail(l.line, "run: %q: the only thing to run is `workload`", f[1])
				break
			}
			st.Duration, err = dur(l.line, f[2], false)
		case StepWorkload:
			if err = argc(1, 1, "workload start|stop"); err != nil {
				break
			}
			switch f[1] {
			case "start":
				st.On = true
			case "stop":
			default:
				err = fail(l.line, "workload: %q: give start or stop", f[1])
			}
		case StepRolling:
			if err = argc(1, 1, "rolling-restart PAUSE"); err != nil {
				break
			}
			st.Duration, err = dur(l.line, f[1], false)
		case StepSleep:
			if err = argc(1, 1, "sleep DURATION"); err != nil {
				break
			}
			st.Duration, err = dur(l.line, f[1], false)
		default:
			err = fail(l.line, "unknown step %q; steps: start partition cut loss latency pause skew crash restart leave rolling-restart join heal wait run workload sleep", f[0])
		}
		if err != nil {
			return nil, err
		}
		sc.Steps = append(sc.Steps, st)
	}
	return sc, nil
}

// parseGroups parses a partition: groups separated by '|', the last may be
// `rest` (every peer of the scenario not named before it).
func parseGroups(line int, args []string, n int, set func(int, string) ([]string, error), all []string, fail func(int, string, ...any) error) ([][]string, error) {
	text := strings.Join(args, " ")
	if text == "" {
		return nil, fail(line, "partition: want `partition A | B [| C …]`")
	}
	parts := strings.Split(text, "|")
	if len(parts) < 2 {
		return nil, fail(line, "partition: give at least two groups separated by |")
	}
	seen := map[string]bool{}
	var groups [][]string
	for i, p := range parts {
		p = strings.ReplaceAll(strings.TrimSpace(p), " ", "")
		if p == "" {
			return nil, fail(line, "partition: group %d is empty", i+1)
		}
		var g []string
		if p == "rest" {
			if i != len(parts)-1 {
				return nil, fail(line, "partition: rest must be the last group")
			}
			for _, q := range all {
				if !seen[q] {
					g = append(g, q)
				}
			}
			if len(g) == 0 {
				return nil, fail(line, "partition: rest is empty: every peer is already in a group")
			}
		} else {
			var err error
			if g, err = set(line, p); err != nil {
				return nil, err
			}
		}
		for _, q := range g {
			if seen[q] {
				return nil, fail(line, "partition: %s is in two groups", q)
			}
			seen[q] = true
		}
		groups = append(groups, g)
	}
	return groups, nil
}

var peerExpr = regexp.MustCompile(`^N(?:/([0-9]+))?(?:([+-])([0-9]+))?$`)

// peerNumber parses one peer name: nK or n{EXPR}.
func peerNumber(s string, n int) (int, error) {
	body, ok := strings.CutPrefix(s, "n")
	if !ok {
		return 0, fmt.Errorf("peer %q: peers are named n1, n2, … or n{N/2+1} (N is the peer count)", s)
	}
	if e, ok := strings.CutPrefix(body, "{"); ok {
		e, ok = strings.CutSuffix(e, "}")
		m := peerExpr.FindStringSubmatch(e)
		if !ok || m == nil {
			return 0, fmt.Errorf("peer %q: write the number as N, N/2, N/2+1, N-1 …", s)
		}
		v := n
		if m[1] != "" {
			d, err := strconv.Atoi(m[1])
			if err != nil || d == 0 {
				return 0, fmt.Errorf("peer %q: cannot divide by %q", s, m[1])
			}
			v /= d
		}
		if m[2] != "" {
			k, err := strconv.Atoi(m[3])
			if err != nil || k > maxPeers {
				return 0, fmt.Errorf("peer %q: %q is too large", s, m[3])
			}
			if m[2] == "+" {
				v += k
			} else {
				v -= k
			}
		}
		if v < 1 || v > maxPeers {
			return 0, fmt.Errorf("peer %q is n%d with N=%d: outside n1..n%d", s, v, n, maxPeers)
		}
		return v, nil
	}
	return peerIndex(s)
}

// peerSet parses a comma-separated list of peers and ranges nA..nB.
func peerSet(s string, n int) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(item, "..")
		a, err := peerNumber(lo, n)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = peerNumber(hi, n); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("range %q is empty (with N=%d it runs from n%d down to n%d)", item, n, a, b)
			}
		}
		for i := a; i <= b; i++ {
			if name := peerName(i); !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	return out, nil
}
