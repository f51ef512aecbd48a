package simulation

import (
	"encoding/json"
	"fmt"
	"github.com/ringleader/ringleader/lockmgr"
	"html"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Convergence is how long the cluster took to agree after the last heal
// (or after the wait began, when nothing was healed), in seconds of wall
// time; -1 for what never agreed before the timeout.
type Convergence struct {
	Line int `json:"line"`
	// Since says what the times are counted from: "heal" or "wait".
	Since    string  `json:"since"`
	Members  float64 `json:"members_s"`
	Ring     float64 `json:"ring_s"`
	Counters float64 `json:"counters_s"`
	OK       bool    `json:"ok"`
	// HealAt is the heal the times count from (seconds into the run), when
	// Since is "heal".
	HealAt float64 `json:"heal_at,omitempty"`
}

// HealTiming is how long after a heal (At, seconds into the run) the
// timeline's samples (or, for members and ring, a wait step, if earlier)
// first showed every running peer agreeing on the alive members, on the
// ring, and on every counter; -1: not before the next heal or the end.
// Resolution: one sample (sampleEvery), or one pass over the peers when
// that takes longer.
type HealTiming struct {
	At       float64 `json:"at"`
	Members  float64 `json:"members_s"`
	Ring     float64 `json:"ring_s"`
	Counters float64 `json:"counters_s"`
}

// HealModel is the SWIM/serf expectation of how long after a heal every
// peer agrees on members and ring: serf retries a failed member about once
// per reconnect interval across the cluster (each peer with failed members
// tries one a round, with probability failed/alive), so a healed split is
// crossed within one interval; the news (refutations, push-pull state)
// then spreads epidemically in about log2(N) gossip rounds. Expect =
// Reconnect + log2(Peers) × Gossip, in wall seconds for the timings the
// agents ran with (scenario time divided by the speed). The model leaves
// out CPU: it holds while every peer gets the processor when its timers
// fire.
type HealModel struct {
	Peers     int     `json:"peers"`
	Gossip    float64 `json:"gossip_s"`
	Reconnect float64 `json:"reconnect_s"`
	Expect    float64 `json:"expect_s"`
}

func newHealModel(peers int, gossip, reconnect time.Duration) HealModel {
	m := HealModel{Peers: peers, Gossip: gossip.Seconds(), Reconnect: reconnect.Seconds()}
	m.Expect = m.Reconnect + math.Log2(float64(max(peers, 2)))*m.Gossip
	return m
}

// within says whether an AfterHeal time t is within twice the model.
func (m HealModel) within(t float64) bool { return t >= 0 && t <= 2*m.Expect }

// withWaits fills in, for members and ring, what a wait step saw before
// the samples did: both read the same views, and a wait that ends in
// agreement may be followed at once by the next heal, before the sampler's
// next pass.
func withWaits(hs []HealTiming, conv []Convergence) []HealTiming {
	earlier := func(a, b float64) float64 {
		if a < 0 || (b >= 0 && b < a) {
			return b
		}
		return a
	}
	for i := range hs {
		for _, c := range conv {
			if c.Since == "heal" && c.HealAt == hs[i].At {
				hs[i].Members = earlier(hs[i].Members, c.Members)
				hs[i].Ring = earlier(hs[i].Ring, c.Ring)
			}
		}
	}
	return hs
}

func afterHeal(heals []float64, samples []Sample, ops []Op) []HealTiming {
	var out []HealTiming
	for i, h := range heals {
		end := math.Inf(1)
		if i+1 < len(heals) {
			end = heals[i+1]
		}
		// Counters can only agree once the writes stop: count from the
		// last write answered before the next heal (still reported from
		// the heal).
		quiet := h
		for _, op := range ops {
			if op.End < end && op.End > quiet {
				quiet = op.End
			}
		}
		ht := HealTiming{At: h, Members: -1, Ring: -1, Counters: -1}
		sampled := false
		for _, s := range samples {
			if s.T < h || s.T >= end {
				continue
			}
			sampled = true
			tv := s.T
			if s.ViewT > 0 {
				tv = s.ViewT
			}
			if s.MembersOK && ht.Members < 0 && tv >= h {
				ht.Members = tv - h
			}
			if s.RingOK && ht.Ring < 0 && tv >= h {
				ht.Ring = tv - h
			}
			if s.Spread == 0 && ht.Counters < 0 && s.T >= quiet {
				ht.Counters = s.T - h
			}
		}
		if sampled { // the final heal may come after the last sample
			out = append(out, ht)
		}
	}
	return out
}

// Report is everything a run found and the full history behind it.
type Report struct {
	Scenario string  `json:"scenario"`
	Seed     uint64  `json:"seed"`
	Speed    float64 `json:"speed"`
	Peers    int     `json:"peers"`
	Clients  int     `json:"clients"`
	// Deviations are how the agents differed from real peers (Deviations).
	Deviations []string `json:"deviations,omitempty"`
	// Wall is the run's length in seconds.
	Wall        float64       `json:"wall_s"`
	Steps       []Step        `json:"steps"`
	Convergence []Convergence `json:"convergence"`
	// AfterHeal is how long after each heal the samples first showed
	// agreement.
	AfterHeal []HealTiming `json:"after_heal"`
	// HealModel is what the SWIM/serf model expects of AfterHeal's members
	// and ring times, for the peer count and the timings the agents ran
	// with.
	HealModel  HealModel           `json:"heal_model"`
	Keys       []KeyCheck          `json:"keys"`
	Views      map[string]PeerView `json:"views"`
	Violations []Violation         `json:"violations"`
	Ops        []Op                `json:"ops"`
	Faults     []Fault             `json:"faults"`
	Wipes      []Wipe              `json:"wipes"`
	Samples    []Sample            `json:"samples"`
	// LockDelay and LockTTL are the agents' lock-delay and the TTL the
	// lock clients asked for, in seconds of wall time; LockKeys the keys
	// they contended for (the first is the busy one).
	LockDelay float64  `json:"lock_delay_s"`
	LockTTL   float64  `json:"lock_ttl_s"`
	LockKeys  []string `json:"lock_keys"`
	// Locks is the lock checker's account (nil if the run stopped early).
	Locks *LockCheck `json:"locks,omitempty"`
	// LockOps are every lock request and its answer; Topology the
	// network's shape over time; Crashes the crashes with the lock keys
	// the crashed peers owned.
	LockOps  []LockOp    `json:"lock_ops"`
	Topology []Topology  `json:"topology"`
	Crashes  []LockCrash `json:"crashes"`
	// Error is the step that stopped the run early, if one did.
	Error string `json:"error,omitempty"`
}

// OK reports whether no invariant was violated.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// Files WriteDir writes.
const (
	SummaryFile  = "summary.txt"
	ReportFile   = "report.json"
	TimelineFile = "timeline.svg"
)

// WriteDir writes the summary, the JSON report and the SVG timeline into
// dir, creating it.
func (r *Report) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("simulation: report directory: %w", err)
	}
	var sum strings.Builder
	r.WriteSummary(&sum)
	js, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return fmt.Errorf("simulation: encode the report: %w", err)
	}
	var svg strings.Builder
	r.WriteSVG(&svg)
	for name, body := range map[string]string{SummaryFile: sum.String(), ReportFile: string(js) + "\n", TimelineFile: svg.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return fmt.Errorf("simulation: write the report: %w", err)
		}
	}
	return nil
}

// WriteSummary writes the readable summary.
func (r *Report) WriteSummary(w io.Writer) {
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "scenario %s: %s\n", r.Scenario, verdict)
	fmt.Fprintf(w, "  %d peers, %d clients, seed %d, speed %gx, %.1fs wall (%.0fs of scenario time)\n",
		r.Peers, r.Clients, r.Seed, r.Speed, r.Wall, r.Wall*r.Speed)
	for _, d := range r.Deviations {
		fmt.Fprintf(w, "  deviation from real peers: %s\n", d)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  stopped early: %s\n", r.Error)
	}
	counts := map[Outcome]int{}
	var majority int
	for _, op := range r.Ops {
		counts[op.Outcome]++
		if op.Consistency == "majority" {
			majority++
		}
	}
	fmt.Fprintf(w, "\nworkload: %d counter writes (%d with consistency=majority): %d acknowledged, %d failed, %d ambiguous\n",
		len(r.Ops), majority, counts[Acked], counts[Failed], counts[Ambiguous])
	reasons := map[string]int{}
	for _, op := range r.Ops {
		if op.Outcome != Acked {
			reasons[string(op.Outcome)+": "+shortErr(op.Err)]++
		}
	}
	for _, k := range slices.Sorted(maps.Keys(reasons)) {
		fmt.Fprintf(w, "  %5d  %s\n", reasons[k], k)
	}
	if len(r.Faults) > 0 {
		fmt.Fprintf(w, "\nfaults:\n")
		for _, f := range r.Faults {
			fmt.Fprintf(w, "  %6.2fs - %6.2fs  line %-3d %s\n", f.Start, f.End, f.Line, f.Text)
		}
	}
	for _, wp := range r.Wipes {
		fmt.Fprintf(w, "  %6.2fs  %s lost its disk (%s): its unspread local writes may be gone\n", wp.At, wp.Peer, wp.Reason)
	}
	fmt.Fprintf(w, "\ncounters (every running peer's value of every key must equal the sum of acknowledged deltas;\n")
	fmt.Fprintf(w, "an ambiguous write, or one at risk with a lost disk, may count once or not at all):\n")
	for _, k := range r.Keys {
		vals := map[int64]bool{}
		for _, v := range k.Values {
			vals[v] = true
		}
		state := "ok"
		if len(vals) > 1 {
			state = "DIVERGED"
		}
		for v := range vals {
			if v < k.Min || v > k.Max {
				state = "WRONG"
			}
		}
		fmt.Fprintf(w, "  %-10s acked %6d  allowed %6d..%-6d (%d ambiguous, %d at risk)  peers %s  %s\n",
			k.Key, k.Acked, k.Min, k.Max, k.Ambiguous, k.AtRisk, valuesSummary(k.Values), state)
	}
	if len(r.AfterHeal) > 0 {
		fmt.Fprintf(w, "\nconvergence after each heal (wall seconds; scenario time is %gx):\n", r.Speed)
		for _, h := range r.AfterHeal {
			fmt.Fprintf(w, "  heal at %6.2fs: members %s  ring %s  counters %s\n", h.At, secs(h.Members), secs(h.Ring), secs(h.Counters))
		}
		if m := r.HealModel; m.Expect > 0 {
			fmt.Fprintf(w, "  SWIM/serf model for %d peers: reconnect %.2fs + log2(%d) x gossip %.2fs = %.2fs (2x: %.2fs)\n",
				m.Peers, m.Reconnect, m.Peers, m.Gossip, m.Expect, 2*m.Expect)
			for _, h := range r.AfterHeal {
				t := max(h.Members, h.Ring)
				if h.Members < 0 || h.Ring < 0 {
					t = -1
				}
				verdict := "within 2x"
				if !m.within(t) {
					verdict = "NOT within 2x"
				}
				fmt.Fprintf(w, "  heal at %6.2fs: members and ring agreed %s after it, %s the model\n", h.At, secs(t), verdict)
			}
		}
	}
	r.writeLockSummary(w)
	fmt.Fprintf(w, "\nchecks:\n")
	if r.OK() {
		fmt.Fprintf(w, "  counters: no lost or doubled increments\n  membership: every running peer sees the same alive members and ring\n")
		if r.Locks != nil {
			fmt.Fprintf(w, "  locks: no two leases of a key overlap, fencing tokens only grow, no grant from a minority side\n")
		}
	}
	for _, v := range r.Violations {
		fmt.Fprintf(w, "  VIOLATION %s\n", v)
	}
}

// writeLockSummary writes the lock lines: requests by answer, holds per
// key, and the unavailability windows after owner crashes.
func (r *Report) writeLockSummary(w io.Writer) {
	if r.Locks == nil || len(r.LockOps) == 0 {
		return
	}
	lc := r.Locks
	fmt.Fprintf(w, "\nlocks: %d requests on %d keys (lock-delay %.2fs, ttl %.2fs wall; the first key is the busy one)\n",
		len(r.LockOps), len(r.LockKeys), r.LockDelay, r.LockTTL)
	for _, op := range []string{"acquire", "renew", "release"} {
		as := lc.Answers[op]
		if len(as) == 0 {
			continue
		}
		var parts []string
		for _, a := range slices.Sorted(maps.Keys(as)) {
			parts = append(parts, fmt.Sprintf("%d %s", as[a], a))
		}
		fmt.Fprintf(w, "  %-8s %s\n", op, strings.Join(parts, ", "))
	}
	perKey := map[string][]Hold{}
	for _, h := range lc.Holds {
		perKey[h.Key] = append(perKey[h.Key], h)
	}
	for _, k := range r.LockKeys {
		hs := perKey[k]
		owners := map[string]bool{}
		var lo, hi int64
		for i, h := range hs {
			owners[h.Owner] = true
			if i == 0 || h.Token < lo {
				lo = h.Token
			}
			hi = max(hi, h.Token)
		}
		fmt.Fprintf(w, "  %-14s %4d grants by %s, tokens %s..%s\n", k, len(hs),
			strings.Join(slices.SortedFunc(maps.Keys(owners), comparePeerNames), ","), tokenText(lo), tokenText(hi))
	}
	if lc.MinorityWindows > 0 {
		fmt.Fprintf(w, "  %d windows in which an owner sat on a minority side past the lock-delay (no grant allowed there)\n", lc.MinorityWindows)
	}
	for _, win := range lc.Windows {
		if win.Window < 0 {
			fmt.Fprintf(w, "  after %s crashed at %.2fs: %s not granted again\n", win.Peer, win.Crash, win.Key)
			continue
		}
		fmt.Fprintf(w, "  after %s crashed at %.2fs: %s unavailable for %.2fs wall (%.1fs scenario time), then granted by %s\n",
			win.Peer, win.Crash, win.Key, win.Window, win.Window*r.Speed, win.Owner)
	}
}

// tokenText writes a fencing token as epoch.seq.
func tokenText(t int64) string {
	epoch, seq := lockmgr.SplitToken(t)
	return fmt.Sprintf("%d.%d", epoch, seq)
}

func secs(s float64) string {
	if s < 0 {
		return "  never"
	}
	return fmt.Sprintf("%6.2fs", s)
}

// shortErr keeps an error's first clause, so the summary groups alike
// errors.
func shortErr(s string) string {
	if i := strings.Index(s, ":"); i > 0 {
		s = s[:i]
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

func valuesSummary(vals map[string]int64) string {
	counts := map[int64]int{}
	for _, v := range vals {
		counts[v]++
	}
	if len(counts) == 1 {
		for v, n := range counts {
			return fmt.Sprintf("all %d = %d", n, v)
		}
	}
	return valuesText(vals)
}

// SVG layout.
const (
	svgW, svgLeft, svgRight  = 960, 60, 20
	svgPanel, svgGap, svgTop = 130, 40, 50
)

// faultColors shade fault windows by kind.
var faultColors = map[string]string{
	StepPartition: "#f4a6a6", StepCut: "#f7c59f", StepLoss: "#c9b3e6", StepLatency: "#b3d4e6",
	StepPause: "#e6e3a1", StepCrash: "#999999", StepRolling: "#bde0b3", StepSkew: "#e0e0f0",
}

// WriteSVG draws the timeline: fault windows shaded; below them the number
// of distinct ring views among the running peers, and the counter spread
// (the largest difference between two peers' values of one key).
func (r *Report) WriteSVG(w io.Writer) {
	end := r.Wall
	if end <= 0 {
		end = 1
	}
	plotW := float64(svgW - svgLeft - svgRight)
	x := func(t float64) float64 { return svgLeft + t/end*plotW }
	h := svgTop + 3*svgPanel + 2*svgGap + 40
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", svgW, h)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(w, `<text x="%d" y="18" font-size="14">%s</text>`+"\n", svgLeft, html.EscapeString(fmt.Sprintf(
		"%s: %d peers, seed %d, speed %gx, %d writes, %d violations", r.Scenario, r.Peers, r.Seed, r.Speed, len(r.Ops), len(r.Violations))))
	bottom := float64(svgTop + 3*svgPanel + 2*svgGap)
	for i, f := range r.Faults {
		c := faultColors[f.Kind]
		if c == "" {
			c = "#dddddd"
		}
		x0, x1 := x(f.Start), max(x(f.End), x(f.Start)+2)
		fmt.Fprintf(w, `<rect x="%.1f" y="%d" width="%.1f" height="%.1f" fill="%s" opacity="0.5"><title>%s</title></rect>`+"\n",
			x0, svgTop-10, x1-x0, bottom-svgTop+10, c, html.EscapeString(fmt.Sprintf("line %d: %s (%.2fs-%.2fs)", f.Line, f.Text, f.Start, f.End)))
		fmt.Fprintf(w, `<text x="%.1f" y="%d" fill="#444">%s</text>`+"\n", x0+2, svgTop-14-(i%2)*11, html.EscapeString(f.Text))
	}
	var maxViews, maxSpread int64 = 1, 1
	for _, s := range r.Samples {
		maxViews = max(maxViews, int64(s.RingViews))
		maxSpread = max(maxSpread, s.Spread)
	}
	panel := func(top float64, title string, maxV int64, value func(Sample) int64, color string) {
		fmt.Fprintf(w, `<rect x="%d" y="%.0f" width="%.0f" height="%d" fill="none" stroke="#888"/>`+"\n", svgLeft, top, plotW, svgPanel)
		fmt.Fprintf(w, `<text x="%d" y="%.0f">%s</text>`+"\n", svgLeft+4, top+12, html.EscapeString(title))
		fmt.Fprintf(w, `<text x="%d" y="%.0f" text-anchor="end">%d</text>`+"\n", svgLeft-4, top+10, maxV)
		fmt.Fprintf(w, `<text x="%d" y="%.0f" text-anchor="end">0</text>`+"\n", svgLeft-4, top+svgPanel)
		y := func(v int64) float64 { return top + svgPanel - float64(v)/float64(maxV)*(svgPanel-16) }
		var pts []string
		for i, s := range r.Samples {
			if i > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.T), y(value(r.Samples[i-1]))))
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.T), y(value(s))))
		}
		if len(pts) > 0 {
			fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		}
	}
	panel(svgTop, "distinct ring views among running peers", maxViews, func(s Sample) int64 { return int64(s.RingViews) }, "#1f5fa8")
	panel(svgTop+svgPanel+svgGap, "counter spread (largest difference between two peers' values of one key)", maxSpread, func(s Sample) int64 { return s.Spread }, "#c0551a")
	r.lockPanel(w, svgTop+2*(svgPanel+svgGap), x)
	for t := 0.0; t <= end; t += tickStep(end) {
		fmt.Fprintf(w, `<text x="%.1f" y="%.0f" text-anchor="middle">%.1fs</text>`+"\n", x(t), bottom+14, t)
	}
	fmt.Fprintf(w, `<text x="%d" y="%.0f" fill="#444">wall time; fault windows shaded (hover for the step); lock bars: a lease's certain part (hover for client, token, owner)</text>`+"\n", svgLeft, bottom+32)
	fmt.Fprintln(w, "</svg>")
}

// lockColors tell the lock keys' owners apart.
var lockColors = []string{"#1f77b4", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#e377c2", "#17becf", "#bcbd22"}

// lockPanel draws one row per lock key: a bar for each hold's certain part
// (colored by the owner that granted it, a thin line to its possible end),
// and a red tick for each refused or ambiguous acquire.
func (r *Report) lockPanel(w io.Writer, top float64, x func(float64) float64) {
	plotW := float64(svgW - svgLeft - svgRight)
	fmt.Fprintf(w, `<rect x="%d" y="%.0f" width="%.0f" height="%d" fill="none" stroke="#888"/>`+"\n", svgLeft, top, plotW, svgPanel)
	fmt.Fprintf(w, `<text x="%d" y="%.0f">%s</text>`+"\n", svgLeft+4, top+12,
		html.EscapeString("lock grants per key (bar: lease certainly live, colored by owner; red tick: acquire refused or ambiguous)"))
	if r.Locks == nil || len(r.LockKeys) == 0 {
		return
	}
	row := (float64(svgPanel) - 18) / float64(len(r.LockKeys))
	rowOf := map[string]int{}
	for i, k := range r.LockKeys {
		rowOf[k] = i
		fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end" font-size="9">%s</text>`+"\n", svgLeft-4, top+18+row*float64(i)+row/2+3,
			html.EscapeString(strings.TrimPrefix(k, LockPrefix)))
	}
	owners := map[string]int{}
	for _, h := range r.Locks.Holds {
		i, ok := rowOf[h.Key]
		if !ok {
			continue
		}
		if _, ok := owners[h.Owner]; !ok {
			owners[h.Owner] = len(owners)
		}
		c := lockColors[owners[h.Owner]%len(lockColors)]
		y := top + 18 + row*float64(i)
		x0, x1 := x(h.Granted), max(x(h.CertainEnd), x(h.Granted)+1)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1"/>`+"\n", x(h.Sent), y+row/2, x(h.PossibleEnd), y+row/2, c)
		fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="0.8"><title>%s</title></rect>`+"\n",
			x0, y+row*0.2, x1-x0, row*0.6, c, html.EscapeString(fmt.Sprintf("%s client %d hold %d: token %s from %s, %.3fs-%.3fs, %d renews, %s",
				h.Key, h.Client, h.Hold, tokenText(h.Token), h.Owner, h.Granted, h.CertainEnd, h.Renews, h.Ended)))
	}
	for _, op := range r.LockOps {
		i, ok := rowOf[op.Key]
		if !ok || op.Op != "acquire" || op.Answer == LockOK {
			continue
		}
		y := top + 18 + row*float64(i)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d00" stroke-width="1"><title>%s</title></line>`+"\n",
			x(op.End), y, x(op.End), y+row*0.2, html.EscapeString(fmt.Sprintf("%s acquire via %s: %s", op.Key, op.Peer, op.Answer)))
	}
}

// tickStep picks a time-axis step giving about ten ticks.
func tickStep(end float64) float64 {
	for _, s := range []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300} {
		if end/s <= 12 {
			return s
		}
	}
	return 600
}
