package simulation

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ringleader/ringleader/agent"
)

// run is one execution of a scenario. The step loop owns it and alone
// changes lastHeal, conv and violations; the clients and the sampler use
// only cfg, sc, c and h, which are safe for concurrent use.
type run struct {
	cfg            Config
	sc             *Scenario
	c              *Cluster
	h              *history
	wl             *workload
	lw             *lockWorkload
	requestTimeout time.Duration
	lastHeal       time.Time
	lastHealAt     float64 // lastHeal in seconds of the history
	conv           []Convergence
	violations     []Violation
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
	// The first `start` forms the voter set with all its peers at once,
	// as a new cluster started with --bootstrap-expect does: the
	// minority-grant checker counts every started peer as a voter.
	c.bootstrapExpect = len(sc.Steps[0].Peers)
	defer c.Close()
	_, _, ctr := cfg.timings()
	r := &run{cfg: cfg, sc: sc, c: c, h: newHistory(), requestTimeout: 2*ctr.MajorityTimeout + time.Second}
	r.wl = newWorkload(r)
	r.lw = newLockWorkload(r)

	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		r.sample(sampleCtx)
	}()

	r.h.noteTopology(0, c.topology())
	stepErr := r.steps(ctx)
	r.stopWorkload()
	if beforeCheck != nil && stepErr == nil {
		beforeCheck(r)
	}
	var views map[string]PeerView
	var final map[string]map[string]int64
	if ctx.Err() == nil {
		// The final check: heal, wait, read every running peer.
		before := r.h.now()
		r.heal()
		r.h.noteTopology(before, r.c.topology())
		r.wait(ctx, Step{Line: 0, Text: "final wait converged", Kind: StepWait}, cfg.scale(finalWait))
		for _, p := range c.Peers() {
			if p.State() == Down && p.stopped() {
				r.h.addWipe(p.Name, "down at the end")
			}
		}
		views, final = r.read()
	}
	stopSampling()
	sampler.Wait()

	ops, faults, wipes, samples, heals := r.h.snapshot()
	lockOps, topo, crashes := r.h.lockSnapshot()
	lc := cfg.lockConfig()
	rep := &Report{
		Scenario: sc.Name, Seed: cfg.Seed, Speed: cfg.Speed, Peers: sc.N, Clients: cfg.Clients, Deviations: Deviations(),
		Wall: r.h.now(), Steps: sc.Steps, Convergence: r.conv, Views: views,
		Ops: ops, Faults: faults, Wipes: wipes, Samples: samples, AfterHeal: withWaits(afterHeal(heals, samples, ops), r.conv),
		LockDelay: lc.LockDelay.Seconds(), LockTTL: lc.DefaultTTL.Seconds(), LockKeys: r.lw.keys,
		LockOps: lockOps, Topology: topo, Crashes: crashes,
	}
	if t, _, _ := cfg.timings(); len(sc.Peers) > 0 {
		rep.HealModel = newHealModel(len(sc.Peers), t.GossipInterval, t.ReconnectInterval)
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
	var lr LockCheck
	lr, vs = CheckLocks(lockOps, topo, crashes, lc.LockDelay.Seconds())
	rep.Locks = &lr
	rep.Violations = append(rep.Violations, vs...)
	return rep, nil
}

// startWorkload starts the counter and the lock clients.
func (r *run) startWorkload() {
	r.wl.start()
	r.lw.start()
}

// stopWorkload stops both and waits for their requests in flight.
func (r *run) stopWorkload() {
	r.wl.stopAndWait()
	r.lw.stopAndWait()
}

// steps executes the scenario's steps in order.
func (r *run) steps(ctx context.Context) error {
	for _, st := range r.sc.Steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.cfg.Progress != nil {
			fmt.Fprintf(r.cfg.Progress, "[%6.2fs] %s:%d  %s\n", r.h.now(), r.sc.Name, st.Line, st.Text)
		}
		before := r.h.now()
		err := r.step(ctx, st)
		r.h.noteTopology(before, r.c.topology())
		if err != nil {
			return fmt.Errorf("%s:%d: %s: %w", r.sc.Name, st.Line, st.Text, err)
		}
	}
	return nil
}

// heal heals the network and notes when. The time is taken before the
// heal, not after: healing wakes every sender a partition held up, and on a
// busy machine this goroutine may then wait seconds for a core, which
// would count as convergence that had already happened (measured: 3-4 s
// with 200 peers on two cores).
func (r *run) heal() {
	r.h.closeFaults(func(f *Fault) bool { return f.Kind != StepCrash && f.Kind != StepSkew })
	r.lastHealAt = r.h.addHeal()
	r.lastHeal = time.Now()
	r.c.Heal()
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
	// The peer counts as a voter from when it starts: it may promise
	// before Start returns.
	r.h.noteTopology(r.h.now(), r.c.topology(name))
	err := r.c.Start(sctx, name)
	r.h.noteTopology(r.h.now(), r.c.topology())
	return err
}

func (r *run) leavePeer(ctx context.Context, name string) error {
	lctx, cancel := context.WithTimeout(ctx, r.cfg.scale(8*time.Second)+2*time.Second)
	defer cancel()
	before := r.h.now()
	err := r.c.Leave(lctx, name)
	r.h.noteTopology(before, r.c.topology())
	return err
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
		if err := c.SetClock(st.Peers[0], r.cfg.scale(st.Duration), st.Drift); err != nil {
			return err
		}
		// Heal leaves clocks as they are: the window lasts to the end,
		// or to the peer's next skew.
		p := st.Peers[0]
		r.h.closeFaults(func(f *Fault) bool { return f.Kind == StepSkew && f.peer == p })
		r.h.openFault(st, StepSkew, p)
	case StepCrash:
		owned := r.lw.ownedKeys(st.Peers[0])
		begin := r.h.now()
		if err := c.Crash(st.Peers[0]); err != nil {
			return err
		}
		r.h.addCrash(LockCrash{Peer: st.Peers[0], At: begin, Keys: owned})
		r.h.openFaultAt(begin, st, StepCrash, st.Peers[0])
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
		r.heal()
	case StepWait:
		if st.Locks {
			return r.sleep(ctx, r.c.quietLeft(r.cfg.lockConfig().LockDelay))
		}
		r.wait(ctx, st, r.cfg.scale(st.Duration))
	case StepRun:
		r.startWorkload()
		err := r.sleep(ctx, r.cfg.scale(st.Duration))
		r.stopWorkload()
		return err
	case StepWorkload:
		if st.On {
			r.startWorkload()
		} else {
			r.stopWorkload()
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
