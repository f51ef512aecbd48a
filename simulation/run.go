package simulation

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/ringleader/ringleader/agent"
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
}

// HealTiming is how long after a heal (At, seconds into the run) the
// timeline's samples first showed every running peer agreeing on the
// alive members, on the ring, and on every counter; -1: not before the
// next heal or the end. Resolution: one sample (sampleEvery).
type HealTiming struct {
	At       float64 `json:"at"`
	Members  float64 `json:"members_s"`
	Ring     float64 `json:"ring_s"`
	Counters float64 `json:"counters_s"`
}

func afterHeal(heals []float64, samples []Sample) []HealTiming {
	var out []HealTiming
	for i, h := range heals {
		end := math.Inf(1)
		if i+1 < len(heals) {
			end = heals[i+1]
		}
		ht := HealTiming{At: h, Members: -1, Ring: -1, Counters: -1}
		sampled := false
		for _, s := range samples {
			if s.T < h || s.T >= end {
				continue
			}
			sampled = true
			if s.MembersOK && ht.Members < 0 {
				ht.Members = s.T - h
			}
			if s.RingOK && ht.Ring < 0 {
				ht.Ring = s.T - h
			}
			if s.Spread == 0 && ht.Counters < 0 {
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
	// Wall is the run's length in seconds.
	Wall        float64       `json:"wall_s"`
	Steps       []Step        `json:"steps"`
	Convergence []Convergence `json:"convergence"`
	// AfterHeal is how long after each heal the samples first showed
	// agreement.
	AfterHeal  []HealTiming        `json:"after_heal"`
	Keys       []KeyCheck          `json:"keys"`
	Views      map[string]PeerView `json:"views"`
	Violations []Violation         `json:"violations"`
	Ops        []Op                `json:"ops"`
	Faults     []Fault             `json:"faults"`
	Wipes      []Wipe              `json:"wipes"`
	Samples    []Sample            `json:"samples"`
	// Error is the step that stopped the run early, if one did.
	Error string `json:"error,omitempty"`
}

// OK reports whether no invariant was violated.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// run is one execution of a scenario.
type run struct {
	cfg            Config
	sc             *Scenario
	c              *Cluster
	h              *history
	wl             *workload
	requestTimeout time.Duration
	lastHeal       time.Time
	conv           []Convergence
	violations     []Violation
}

// sampleEvery is how often (wall time) the timeline samples a cluster of
// up to ten peers; larger ones are sampled less often, in proportion, so
// that watching does not starve what is watched.
const sampleEvery = 25 * time.Millisecond

// pollEvery is how often a wait checks for agreement: sampleEvery scaled
// the same way.
func (r *run) pollEvery() time.Duration {
	return sampleEvery * time.Duration(1+len(r.sc.Peers)/10)
}

// finalWait bounds the convergence wait after the last step (scenario
// time).
const finalWait = 60 * time.Second

// Run runs a scenario against real agents on an in-memory network and
// checks the result. It returns a report even when a step fails (with the
// error in Report.Error and a violation); the error is then also returned.
// ctx bounds the whole run.
func Run(ctx context.Context, cfg Config, sc *Scenario) (*Report, error) {
	return runWith(ctx, cfg, sc, nil)
}

// runWith is Run with a hook called after the last step, before the final
// heal and check: the tests plant violations through it.
func runWith(ctx context.Context, cfg Config, sc *Scenario, beforeCheck func(*run)) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withSpeed(len(sc.Peers))
	c, err := NewCluster(cfg, sc.Peers)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_, _, ctr := cfg.timings()
	r := &run{cfg: cfg, sc: sc, c: c, h: newHistory(), requestTimeout: 2*ctr.MajorityTimeout + time.Second}
	r.wl = newWorkload(r)

	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		r.sample(sampleCtx)
	}()

	stepErr := r.steps(ctx)
	r.wl.stopAndWait()
	if beforeCheck != nil && stepErr == nil {
		beforeCheck(r)
	}
	var views map[string]PeerView
	var final map[string]map[string]int64
	if ctx.Err() == nil {
		// The final check: heal, wait, read every running peer.
		r.c.Heal()
		r.h.closeFaults(func(f *Fault) bool { return f.Kind != "crash" })
		r.h.addHeal()
		r.lastHeal = time.Now()
		r.wait(ctx, Step{Line: 0, Text: "final wait converged", Kind: StepWait}, cfg.scale(finalWait))
		for _, p := range c.Peers() {
			if p.State() == Down && slices.Contains(sc.Peers, p.Name) && p.started() {
				r.h.addWipe(p.Name, "down at the end")
			}
		}
		views, final = r.read()
	}
	stopSampling()
	sampler.Wait()

	ops, faults, wipes, samples, heals := r.h.snapshot()
	rep := &Report{
		Scenario: sc.Name, Seed: cfg.Seed, Speed: cfg.Speed, Peers: sc.N, Clients: cfg.Clients,
		Wall: r.h.now(), Steps: sc.Steps, Convergence: r.conv, Views: views,
		Ops: ops, Faults: faults, Wipes: wipes, Samples: samples, AfterHeal: afterHeal(heals, samples),
	}
	rep.Violations = append(rep.Violations, r.violations...)
	if stepErr == nil && ctx.Err() != nil {
		stepErr = ctx.Err()
	}
	if stepErr != nil {
		rep.Error = stepErr.Error()
		rep.Violations = append(rep.Violations, Violation{Checker: "harness", Kind: "step", Msg: stepErr.Error()})
		return rep, stepErr
	}
	var vs []Violation
	rep.Keys, vs = CheckCounters(ops, wipes, final)
	rep.Violations = append(rep.Violations, vs...)
	running, _ := c.Running()
	var names []string
	for _, p := range running {
		names = append(names, p.Name)
	}
	rep.Violations = append(rep.Violations, CheckMembership(views, names)...)
	return rep, nil
}

// started reports whether the peer ever ran (its serf snapshot dir or
// store exists); a peer never started has nothing to lose.
func (p *Peer) started() bool { return p.gen.Load() > 0 }

// steps executes the scenario's steps in order.
func (r *run) steps(ctx context.Context) error {
	for _, st := range r.sc.Steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.cfg.Progress != nil {
			fmt.Fprintf(r.cfg.Progress, "[%6.2fs] %s:%d  %s\n", r.h.now(), r.sc.Name, st.Line, st.Text)
		}
		if err := r.step(ctx, st); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", r.sc.Name, st.Line, st.Text, err)
		}
	}
	return nil
}

func (r *run) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *run) startPeer(ctx context.Context, name string) error {
	sctx, cancel := context.WithTimeout(ctx, 4*r.cfg.scale(agent.DefaultConfig().Counters.IdentityTimeout)+10*time.Second)
	defer cancel()
	return r.c.Start(sctx, name)
}

func (r *run) leavePeer(ctx context.Context, name string) error {
	lctx, cancel := context.WithTimeout(ctx, r.cfg.scale(8*time.Second)+2*time.Second)
	defer cancel()
	return r.c.Leave(lctx, name)
}

func (r *run) step(ctx context.Context, st Step) error {
	c := r.c
	switch st.Kind {
	case StepStart:
		for _, p := range st.Peers {
			if err := r.startPeer(ctx, p); err != nil {
				return err
			}
		}
	case StepJoin:
		return r.startPeer(ctx, st.Peers[0])
	case StepPartition:
		if err := c.Partition(st.Groups); err != nil {
			return err
		}
		r.h.closeFaults(func(f *Fault) bool { return f.Kind == StepPartition })
		r.h.openFault(st, StepPartition, "")
	case StepCut:
		for _, from := range st.From {
			for _, to := range st.To {
				if err := c.CutOneWay(from, to); err != nil {
					return err
				}
				if st.Both {
					if err := c.CutOneWay(to, from); err != nil {
						return err
					}
				}
			}
		}
		r.h.openFault(st, StepCut, "")
	case StepLoss:
		if err := c.Network().SetLoss(st.Percent); err != nil {
			return err
		}
		r.h.closeFaults(func(f *Fault) bool { return f.Kind == StepLoss })
		if st.Percent > 0 {
			r.h.openFault(st, StepLoss, "")
		}
	case StepLatency:
		if err := c.Network().SetLatency(r.cfg.scale(st.Duration), r.cfg.scale(st.Jitter)); err != nil {
			return err
		}
		r.h.closeFaults(func(f *Fault) bool { return f.Kind == StepLatency })
		if st.Duration > 0 || st.Jitter > 0 {
			r.h.openFault(st, StepLatency, "")
		}
	case StepPause:
		d := r.cfg.scale(st.Duration)
		if err := c.Pause(st.Peers[0], d); err != nil {
			return err
		}
		// The window is approximate: it ends at the next step after the
		// resume, or at a heal.
		r.h.openFault(st, StepPause, st.Peers[0])
		p := st.Peers[0]
		r.afterPause(d, p)
	case StepSkew:
		return c.SetClock(st.Peers[0], r.cfg.scale(st.Duration), st.Drift)
	case StepCrash:
		if err := c.Crash(st.Peers[0]); err != nil {
			return err
		}
		r.h.openFault(st, StepCrash, st.Peers[0])
	case StepRestart:
		p := st.Peers[0]
		if st.Empty {
			if err := c.Wipe(p); err != nil {
				return err
			}
			r.h.addWipe(p, "restart --empty")
		}
		if err := r.startPeer(ctx, p); err != nil {
			return err
		}
		r.h.closeFaults(func(f *Fault) bool { return f.Kind == StepCrash && f.peer == p })
	case StepLeave:
		return r.leavePeer(ctx, st.Peers[0])
	case StepRolling:
		running, _ := c.Running()
		for _, p := range running {
			r.h.openFault(Step{Line: st.Line, Text: "rolling-restart " + p.Name}, StepRolling, p.Name)
			if err := r.leavePeer(ctx, p.Name); err != nil {
				return err
			}
			if err := r.startPeer(ctx, p.Name); err != nil {
				return err
			}
			r.h.closeFaults(func(f *Fault) bool { return f.Kind == StepRolling })
			if err := r.sleep(ctx, r.cfg.scale(st.Duration)); err != nil {
				return err
			}
		}
	case StepHeal:
		c.Heal()
		r.h.closeFaults(func(f *Fault) bool { return f.Kind != StepCrash })
		r.h.addHeal()
		r.lastHeal = time.Now()
	case StepWait:
		r.wait(ctx, st, r.cfg.scale(st.Duration))
	case StepRun:
		r.wl.start()
		err := r.sleep(ctx, r.cfg.scale(st.Duration))
		r.wl.stopAndWait()
		return err
	case StepWorkload:
		if st.On {
			r.wl.start()
		} else {
			r.wl.stopAndWait()
		}
	case StepSleep:
		return r.sleep(ctx, r.cfg.scale(st.Duration))
	default:
		return fmt.Errorf("simulation: step %q is not implemented", st.Kind)
	}
	return nil
}

// afterPause ends the pause's fault window when the pause will end (the
// cluster resumes the peer by itself); a heal before then resumes it
// sooner, which the window does not show.
func (r *run) afterPause(d time.Duration, peer string) {
	end := r.h.now() + d.Seconds()
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	for i := range r.h.faults {
		if f := &r.h.faults[i]; f.open && f.Kind == StepPause && f.peer == peer {
			f.End, f.open = end, false
		}
	}
}

// agreement is what the running peers agree on right now.
type agreement struct {
	members, ring, counters bool
}

// agree checks the running peers: each sees exactly the running peers
// alive; all hold one ring of them; all hold the same counters.
func (r *run) agree() agreement {
	ps, as := r.c.Running()
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	g := agreement{members: true, ring: true, counters: true}
	ring := ""
	var first []agent.CounterEntry
	for i, a := range as {
		alive, err := aliveOf(a)
		if err != nil || !slices.Equal(alive, names) {
			g.members = false
		}
		v := a.View()
		sum := v.Ring.ChecksumHex()
		if v.Ring.Len() != len(names) || (i > 0 && sum != ring) {
			g.ring = false
		}
		ring = sum
		entries, _, err := a.ListCounters(KeyPrefix, "", 10000)
		if err != nil || (i > 0 && !slices.EqualFunc(entries, first, entryEqual)) {
			g.counters = false
		}
		if i == 0 {
			first = entries
		}
	}
	return g
}

func entryEqual(a, b agent.CounterEntry) bool {
	return a.Key == b.Key && a.Error == b.Error && (a.Value == nil) == (b.Value == nil) && (a.Value == nil || *a.Value == *b.Value)
}

// aliveOf returns the peers a sees alive, in name order.
func aliveOf(a *agent.Agent) ([]string, error) {
	ms, err := a.Members()
	if err != nil {
		return nil, err
	}
	var alive []string
	for _, m := range ms {
		if m.Peer && m.Status == "alive" {
			alive = append(alive, m.Name)
		}
	}
	slices.SortFunc(alive, comparePeerNames)
	return alive, nil
}

// wait polls until the running peers agree on members, ring and counters,
// or timeout passes; it records how long each took.
func (r *run) wait(ctx context.Context, st Step, timeout time.Duration) {
	begin := time.Now()
	from, since := begin, "wait"
	if !r.lastHeal.IsZero() {
		from, since = r.lastHeal, "heal"
	}
	cv := Convergence{Line: st.Line, Since: since, Members: -1, Ring: -1, Counters: -1}
	deadline := begin.Add(timeout)
	for {
		g := r.agree()
		now := time.Now()
		at := now.Sub(from).Seconds()
		if g.members && cv.Members < 0 {
			cv.Members = at
		}
		if g.ring && cv.Ring < 0 {
			cv.Ring = at
		}
		if g.counters && cv.Counters < 0 {
			cv.Counters = at
		}
		if g.members && g.ring && g.counters {
			cv.OK = true
			break
		}
		if now.After(deadline) || ctx.Err() != nil {
			var what []string
			if !g.members {
				what = append(what, "members")
			}
			if !g.ring {
				what = append(what, "ring")
			}
			if !g.counters {
				what = append(what, "counters")
			}
			r.violations = append(r.violations, Violation{Checker: "liveness", Kind: "not-converged",
				Msg: fmt.Sprintf("line %d (%s): after %v the running peers still disagree on %v", st.Line, st.Text, timeout.Round(time.Millisecond), what)})
			break
		}
		if r.sleep(ctx, r.pollEvery()) != nil {
			break
		}
	}
	r.conv = append(r.conv, cv)
}

// read returns each running peer's view and counter values.
func (r *run) read() (map[string]PeerView, map[string]map[string]int64) {
	views := map[string]PeerView{}
	final := map[string]map[string]int64{}
	ps, as := r.c.Running()
	for i, a := range as {
		alive, _ := aliveOf(a)
		views[ps[i].Name] = PeerView{Alive: alive, Ring: a.View().Ring.ChecksumHex()}
		vals := map[string]int64{}
		after := ""
		for range 1000 { // pages; bounded
			entries, next, err := a.ListCounters(KeyPrefix, after, 10000)
			if err != nil {
				break
			}
			for _, e := range entries {
				if e.Value != nil {
					vals[e.Key] = *e.Value
				}
			}
			if next == "" {
				break
			}
			after = next
		}
		final[ps[i].Name] = vals
	}
	return views, final
}

// sample records the timeline until ctx is done.
func (r *run) sample(ctx context.Context) {
	t := time.NewTicker(r.pollEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ps, as := r.c.Running()
		rings := map[string]bool{}
		membersOK, ringOK := true, true
		var names []string
		for _, p := range ps {
			names = append(names, p.Name)
		}
		var all []map[string]int64
		keys := map[string]bool{}
		for _, a := range as {
			v := a.View()
			rings[v.Ring.ChecksumHex()] = true
			ringOK = ringOK && v.Ring.Len() == len(names)
			if alive, err := aliveOf(a); err != nil || !slices.Equal(alive, names) {
				membersOK = false
			}
			entries, _, err := a.ListCounters(KeyPrefix, "", 10000)
			if err != nil {
				continue
			}
			vals := map[string]int64{}
			for _, e := range entries {
				if e.Value != nil {
					vals[e.Key] = *e.Value
					keys[e.Key] = true
				}
			}
			all = append(all, vals)
		}
		var spread int64
		for k := range keys {
			lo, hi := all[0][k], all[0][k] // a key a peer lacks reads 0
			for _, vals := range all[1:] {
				lo, hi = min(lo, vals[k]), max(hi, vals[k])
			}
			spread = max(spread, hi-lo)
		}
		r.h.addSample(Sample{T: r.h.now(), Running: len(as), RingViews: len(rings), Spread: spread,
			RingOK: ringOK && len(rings) == 1, MembersOK: membersOK})
	}
}
