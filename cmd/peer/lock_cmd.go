package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/ringleader/ringleader/agent/client"
	"github.com/ringleader/ringleader/lockmgr"
)

// lockSubcommands are peer lock's subcommands besides running a command
// (peer lock KEY -- CMD), for help and argument checks.
var lockSubcommands = []subcommand{
	{
		name: "acquire", args: "KEY",
		summary: "take the lock on KEY and print its key, fencing token, lease ID, TTL and owner",
		help: "The lease ends after --ttl unless renewed with 'peer lock renew'; end it\n" +
			"sooner with 'peer lock release KEY LEASE'. While another lease holds KEY,\n" +
			"the request waits in a FIFO queue for up to --wait (default 0s: answer at\n" +
			"once); still held then, the command exits 1 and names the holder.\n" +
			"A 503 answer (no quorum yet, as in a new cluster's first lock-delay, or\n" +
			"the key's owner failing over) is asked again every 250ms until --wait\n" +
			"ends, then exits 1; without --wait it exits 1 at once.\n" +
			"Hand the fencing token to the resource the lock guards, and have it refuse\n" +
			"tokens lower than one it has seen.",
		flags: []string{"ttl", "wait", "holder"},
	},
	{
		name: "renew", args: "KEY LEASE",
		summary: "extend lease LEASE on KEY by --ttl from now and print it as acquire does",
		help: "Renew well before the lease ends (at a third of its TTL, say): the lease\n" +
			"counts from when the renewal is sent. An expired, released or unknown\n" +
			"lease cannot be renewed (exit 1): acquire the lock again.",
		flags: []string{"ttl"},
	},
	{
		name: "release", args: "KEY LEASE",
		summary: "end lease LEASE on KEY; the next waiter, if any, gets the lock",
		help:    "An expired, released or unknown lease is an error (exit 1).",
	},
	{
		name: "info", args: "KEY",
		summary: "print whether KEY is held, by which holder label and token, for how long, and how many wait",
		help:    "Asks the owner of KEY; what it prints may have changed by the time you read it.",
	},
}

// lockRunHelp is the help of peer lock KEY -- CMD.
const lockRunHelp = `Usage: peer lock [flags] KEY -- CMD [ARGS...]

Run CMD while holding the lock on KEY, like flock(1) or 'consul lock'.

peer lock waits for the lock (by default with no limit: give --wait to bound
it; still held then, it exits 1 naming the holder), starts CMD with
RINGLEADER_FENCING_TOKEN, RINGLEADER_LOCK_KEY and RINGLEADER_LOCK_LEASE in
its environment, renews the lease every TTL/3 or so, and releases it when CMD
exits. It exits with CMD's status (128+N when a signal N ended CMD).
SIGINT and SIGTERM sent to peer are passed on to CMD.

If renewing fails (the owner no longer knows the lease, or renewals keep
failing), peer sends SIGTERM to CMD at the latest --grace plus a safety
margin (max(TTL/10, 100ms)) before the lease can expire, counted from when
the last renewal was sent, and SIGKILL --grace later, so that CMD has ended
before another holder can get the lock. peer then exits with CMD's status,
or 1 if that was 0. So --ttl must exceed --grace plus the margin.

CMD runs in a process group of its own, so that the signals reach what it
starts too; it cannot read from the terminal. Processes CMD leaves running
in the background when it exits are not covered by the lock. A paused host
(a stopped VM, say) cannot stop CMD in time: have the resource check the
fencing token.

Exit status:
  CMD's         CMD ran and exited (128+N when signal N ended it); 1 if it
                exited 0 after the lock was lost
  1             the lock was not taken: still held after --wait, the peer
                unreachable, a 503 until --wait ended, or a request refused
  2             usage error (bad flags or arguments, --ttl too short for
                --grace); nothing was asked
  126           CMD was found but could not be started (the lock is released)
  127           CMD was not found (the lock is released)
  128+N         signal N (SIGINT, SIGTERM) came while waiting for the lock
CMD's own status may be any of these numbers too.`

// lockWaitChunk is the longest wait one acquire request asks for when peer
// lock KEY -- CMD waits without limit: it asks again when one runs out.
var lockWaitChunk = time.Minute

// notifySignals relays SIGINT and SIGTERM to c until stop is called (a test
// sends its own).
var notifySignals = func(c chan<- os.Signal) (stop func()) {
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	return func() { signal.Stop(c) }
}

func lockCommand(fs *pflag.FlagSet) func([]string) error {
	c := clientFlags(fs)
	ttl := fs.Duration("ttl", 0, "acquire, renew, KEY -- CMD: the lease's time to live, 1s up to the peer's lock-delay minus its drift margin (0, the default: no TTL is sent, so the peer's --lock-default-ttl applies, 10s unless set; for renew, the TTL the lease was granted with)")
	wait := fs.Duration("wait", 0, "acquire, KEY -- CMD: how long to wait while another holds the lock (acquire: default 0s; KEY -- CMD: no limit unless given)")
	holder := fs.String("holder", "", "acquire, KEY -- CMD: a label shown to others who find the lock held (default: this host's name)")
	grace := fs.Duration("grace", 5*time.Second, "KEY -- CMD: time from SIGTERM to SIGKILL when the lock is lost")
	// Defined here so --help reaches the action, which knows the subcommand.
	help := fs.BoolP("help", "h", false, "show help for peer lock or one of its subcommands")
	return func(args []string) error {
		if *help {
			return lockHelp(fs, args)
		}
		opts := client.LockOptions{Wait: *wait, Holder: *holder}
		if opts.Holder == "" {
			opts.Holder, _ = os.Hostname()
		}
		if *ttl < 0 || *wait < 0 || *grace < 0 {
			return usagef("--ttl %v, --wait %v, --grace %v: none may be negative", *ttl, *wait, *grace)
		}
		if dash := fs.ArgsLenAtDash(); dash >= 0 {
			if dash != 1 {
				return usagef("want one KEY before '--', then the command: peer lock KEY -- CMD [ARGS...]")
			}
			if len(args) == 1 {
				return usagef("no command after '--': peer lock KEY -- CMD [ARGS...]")
			}
			if err := checkLockFlags(fs, "KEY -- CMD", []string{"ttl", "wait", "holder", "grace"}); err != nil {
				return err
			}
			if fs.Changed("ttl") {
				opts.TTL = *ttl // else the peer's default TTL (--lock-default-ttl)
			}
			return lockRun(c, args[0], args[1:], opts, fs.Changed("wait"), *grace)
		}
		if len(args) == 0 {
			return usagef("give a subcommand (acquire, renew, release or info), or run a command: peer lock KEY -- CMD [ARGS...]")
		}
		sub := findSubcommand(lockSubcommands, args[0])
		if sub == nil {
			return usagef("unknown subcommand %q: use acquire, renew, release or info; to run a command under a lock: peer lock KEY -- CMD [ARGS...]", args[0])
		}
		args = args[1:]
		if err := checkLockFlags(fs, sub.name, sub.flags); err != nil {
			return err
		}
		want := 1
		if sub.name == "renew" || sub.name == "release" {
			want = 2
		}
		if len(args) != want {
			return usagef("%s: want %s", sub.name, sub.args)
		}
		if args[0] == "" {
			return usagef("KEY is empty")
		}
		if want == 2 {
			if err := checkLease(args[1]); err != nil {
				return err
			}
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx := context.Background()
		switch sub.name {
		case "acquire":
			if fs.Changed("ttl") {
				opts.TTL = *ttl
			}
			// A 503 (no quorum yet, an owner failing over) is asked
			// again until --wait ends, as KEY -- CMD does; a 409 is
			// final (the peer waited already). One request may ask for
			// the whole wait.
			rule := waitRule{limited: true, chunk: opts.Wait}
			l, err := askUntilWaitEnds(ctx, opts, rule, func(ctx context.Context, o client.LockOptions) (client.Lease, error) {
				return cl.Acquire(ctx, args[0], o)
			})
			if err != nil {
				return lockError(c, err, args[0], opts.Wait)
			}
			return printLease(c, l)
		case "renew":
			var t time.Duration
			if fs.Changed("ttl") {
				t = *ttl
			}
			l, err := cl.Renew(ctx, args[0], args[1], t)
			if err != nil {
				return lockError(c, err, args[0], 0)
			}
			return printLease(c, l)
		case "release":
			if err := cl.Release(ctx, args[0], args[1]); err != nil {
				return lockError(c, err, args[0], 0)
			}
			if *c.json {
				return printJSON(map[string]any{"key": args[0], "released": true})
			}
			_, err := fmt.Fprintf(out, "released %s\n", args[0])
			return err
		default: // info
			s, err := cl.LockInfo(ctx, args[0])
			if err != nil {
				return lockError(c, err, args[0], 0)
			}
			return printLockState(c, s)
		}
	}
}

// checkLockFlags refuses a flag given on the command line that does not
// apply to what peer lock was asked to do. One set in the environment may
// be meant for another use, so it is let be.
func checkLockFlags(fs *pflag.FlagSet, what string, applies []string) error {
	for _, name := range []string{"ttl", "wait", "holder", "grace"} {
		if !onCommandLine(fs, name) {
			continue
		}
		ok := false
		for _, a := range applies {
			ok = ok || a == name
		}
		if !ok {
			return usagef("--%s does not apply to %s", name, what)
		}
	}
	return nil
}

// checkLease checks a lease ID's form: 32 hex digits.
func checkLease(lease string) error {
	if len(lease) != 32 {
		return usagef("LEASE %q: want the 32 hex digits 'peer lock acquire' printed", lease)
	}
	for i := 0; i < len(lease); i++ {
		if c := lease[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return usagef("LEASE %q: want the 32 hex digits 'peer lock acquire' printed", lease)
		}
	}
	return nil
}

// lockErrorAnswer is what a failed lock call prints on stdout with --json,
// so that scripts keep what the peer said: its HTTP status (absent when no
// peer answered), its error, and for a key still held (409) the holder's
// label and the time its lease had left.
type lockErrorAnswer struct {
	Key         string  `json:"key"`
	Code        int     `json:"code,omitempty"`
	Error       string  `json:"error"`
	Holder      *string `json:"holder,omitempty"`
	RemainingMS *int64  `json:"remaining_ms,omitempty"`
}

// lockError words a lock call's error for the command line (stderr, exit
// 1); with --json it also prints a lockErrorAnswer on stdout.
func lockError(c apiClient, err error, key string, waited time.Duration) error {
	var apiErr *client.APIError
	if *c.json {
		a := lockErrorAnswer{Key: key, Error: c.explain(err).Error()}
		if errors.As(err, &apiErr) {
			a.Code, a.Error = apiErr.Status, apiErr.Message
			if errors.Is(err, client.ErrHeld) {
				ms := apiErr.Remaining.Milliseconds()
				a.Holder, a.RemainingMS = &apiErr.Holder, &ms
			}
		}
		if perr := printJSON(a); perr != nil {
			return perr
		}
	}
	switch {
	case errors.Is(err, client.ErrHeld) && errors.As(err, &apiErr):
		who := "another holder"
		if apiErr.Holder != "" {
			who = strconv.Quote(apiErr.Holder)
		}
		return fmt.Errorf("lock %q is held by %s (%v left on its lease) after waiting %v; give --wait to wait longer", key, who, apiErr.Remaining, waited)
	}
	return c.explain(err)
}

func printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeJSONLine(b)
}

func printLease(c apiClient, l client.Lease) error {
	if *c.json {
		return printJSON(l)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "key\t%s\ntoken\t%d\nlease\t%s\nttl\t%v\nowner\t%s\n", l.Key, l.Token, l.Lease, l.TTL(), dash(l.Owner))
	return tw.Flush()
}

func printLockState(c apiClient, s client.LockState) error {
	if *c.json {
		return printJSON(s)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if !s.Held {
		fmt.Fprintf(tw, "key\t%s\nheld\tno\nwaiters\t%d\nowner\t%s\n", s.Key, s.Waiters, dash(s.Owner))
		return tw.Flush()
	}
	fmt.Fprintf(tw, "key\t%s\nheld\tyes\nholder\t%s\ntoken\t%d\nremaining\t%v\nwaiters\t%d\nowner\t%s\n",
		s.Key, dash(s.Holder), s.Token, s.Remaining(), s.Waiters, dash(s.Owner))
	return tw.Flush()
}

// lockRun is peer lock KEY -- CMD: see lockRunHelp.
func lockRun(c apiClient, key string, argv []string, opts client.LockOptions, waitGiven bool, grace time.Duration) error {
	if key == "" {
		return usagef("KEY is empty")
	}
	ttl := opts.TTL
	if ttl == 0 {
		// The peer's default TTL, known once granted: plan for the
		// longest one it can have (the default lock-delay's MaxTTL); the
		// client refuses a grant too short for the margin, saying so.
		ttl = lockmgr.DefaultConfig().MaxTTL()
	}
	safety := client.SafetyMargin(ttl)
	if opts.TTL > 0 && opts.TTL <= grace+safety {
		return usagef("--ttl %v must exceed --grace %v plus the safety margin %v (max(TTL/10, 100ms)), or CMD could outlive the lease; raise --ttl or lower --grace",
			opts.TTL, grace, safety)
	}
	opts.Margin = grace + safety
	cl, err := c.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	sigs := make(chan os.Signal, 8)
	stop := notifySignals(sigs)
	defer stop()

	// Wait for the lock; a signal ends the wait.
	type locked struct {
		h   *client.HeldLock
		err error
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan locked, 1)
	go func() {
		h, err := lockWaiting(ctx, cl, key, opts, waitGiven)
		got <- locked{h, err}
	}()
	var r locked
	select {
	case r = <-got:
	case sig := <-sigs:
		cancel()
		if r = <-got; r.h != nil {
			unlock(r.h)
		}
		return &exitStatus{code: 128 + signalNumber(sig), msg: fmt.Sprintf("%v while waiting for the lock on %q", sig, key)}
	}
	if r.err != nil {
		return lockError(c, r.err, key, opts.Wait)
	}
	h := r.h

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(),
		"RINGLEADER_FENCING_TOKEN="+strconv.FormatInt(h.Token(), 10),
		"RINGLEADER_LOCK_KEY="+key,
		"RINGLEADER_LOCK_LEASE="+h.Lease())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, out, errOut
	cmd.WaitDelay = time.Second // for output pipes held by what CMD left running
	ownGroup(cmd)
	if err := cmd.Start(); err != nil {
		unlock(h)
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = 127
		}
		return &exitStatus{code: code, msg: fmt.Sprintf("cannot run %s: %v (the lock is released)", argv[0], err)}
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var (
		waitErr   error
		lost      bool
		done      = h.Done()
		killTimer *time.Timer
		kill      <-chan time.Time
	)
	for running := true; running; {
		select {
		case waitErr = <-exited:
			running = false
		case sig := <-sigs:
			signalGroup(cmd.Process, sig)
		case <-done:
			done, lost = nil, true
			after := max(0, min(grace, time.Until(h.Deadline().Add(-safety))))
			fmt.Fprintf(errOut, "peer lock: lost the lock on %q: %v; sending SIGTERM to %s, SIGKILL in %v\n", key, h.Err(), argv[0], after.Round(time.Millisecond))
			signalGroup(cmd.Process, syscall.SIGTERM)
			killTimer = time.NewTimer(after)
			kill = killTimer.C
		case <-kill:
			kill = nil
			fmt.Fprintf(errOut, "peer lock: %s still runs after --grace; sending SIGKILL\n", argv[0])
			signalGroup(cmd.Process, syscall.SIGKILL)
		}
	}
	if killTimer != nil {
		killTimer.Stop()
	}
	unlock(h)

	status := 0
	var ee *exec.ExitError
	switch {
	case errors.As(waitErr, &ee):
		status = ee.ExitCode()
		if sig, ok := exitSignal(ee.ProcessState); ok {
			status = 128 + int(sig)
		}
	case waitErr != nil:
		fmt.Fprintf(errOut, "peer lock: waiting for %s: %v\n", argv[0], waitErr)
		status = 1
	}
	if lost {
		return &exitStatus{code: max(status, 1), msg: fmt.Sprintf("the lock on %q was lost while %s ran", key, argv[0])}
	}
	if status != 0 {
		return &exitStatus{code: status}
	}
	return nil
}

// lockWaiting takes the lock, waiting up to opts.Wait, or without limit
// when no wait was given (one request of up to lockWaitChunk at a time).
func lockWaiting(ctx context.Context, cl *client.Client, key string, opts client.LockOptions, waitGiven bool) (*client.HeldLock, error) {
	rule := waitRule{limited: waitGiven, chunk: lockWaitChunk, retryHeld: true}
	return askUntilWaitEnds(ctx, opts, rule, func(ctx context.Context, o client.LockOptions) (*client.HeldLock, error) {
		return cl.Lock(ctx, key, o)
	})
}

// waitRule says how askUntilWaitEnds waits.
type waitRule struct {
	limited   bool          // opts.Wait bounds the wait; else there is no limit
	chunk     time.Duration // the longest wait one request asks for
	retryHeld bool          // ask again after a 409 too, not only after a 503
}

// askUntilWaitEnds calls ask, each time with the part of opts.Wait left (at
// most rule.chunk), and asks again while the answer is 503 (a cluster in
// its first lock-delay with no quorum yet, an owner failing over, a ring
// settling) — or, with rule.retryHeld, 409 — until the wait ends. With a
// limited wait of 0 it asks once.
func askUntilWaitEnds[T any](ctx context.Context, opts client.LockOptions, rule waitRule, ask func(context.Context, client.LockOptions) (T, error)) (T, error) {
	until := time.Now().Add(opts.Wait)
	told := false
	for first := true; ; first = false {
		o := opts
		switch {
		case !rule.limited:
			o.Wait = rule.chunk
		case first:
			o.Wait = min(rule.chunk, opts.Wait)
		default:
			o.Wait = max(0, min(rule.chunk, time.Until(until)))
		}
		start := time.Now()
		h, err := ask(ctx, o)
		retry := errors.Is(err, client.ErrUnavailable) || (rule.retryHeld && errors.Is(err, client.ErrHeld))
		if !retry || ctx.Err() != nil || (rule.limited && !time.Now().Before(until)) {
			return h, err
		}
		if errors.Is(err, client.ErrUnavailable) && !told {
			fmt.Fprintf(errOut, "peer lock: %v; waiting\n", err)
			told = true
		}
		// A peer that answers before the wait ran out is not waited on
		// again at once.
		if time.Since(start) < o.Wait/2 || errors.Is(err, client.ErrUnavailable) {
			t := time.NewTimer(250 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				var none T
				return none, ctx.Err()
			case <-t.C:
			}
		}
	}
}

// unlock releases h, reporting a failure (the lease then runs out by
// itself).
func unlock(h *client.HeldLock) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Unlock(ctx); err != nil {
		fmt.Fprintf(errOut, "peer lock: releasing %q: %v (the lease runs out by itself, at the latest %v after its last renewal)\n", h.Key(), err, h.TTL())
	}
}

func signalNumber(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return int(s)
	}
	return 1
}

// lockHelp prints help for peer lock, or for the subcommand named in args,
// on stdout.
func lockHelp(fs *pflag.FlagSet, args []string) error {
	if len(args) > 0 && fs.ArgsLenAtDash() < 0 {
		sub := findSubcommand(lockSubcommands, args[0])
		if sub == nil {
			return usagef("unknown subcommand %q: use acquire, renew, release or info", args[0])
		}
		printSubcommand(fs, "lock", sub)
		return nil
	}
	fmt.Fprintf(out, "%s\n\nSubcommands, for scripts that manage a lease themselves:\n", lockRunHelp)
	printSubcommands(fs, "lock", lockSubcommands)
	return nil
}
