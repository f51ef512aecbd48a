// Command peer runs a Ringleader peer and talks to one.
//
//	peer agent --name n1 --join 10.0.0.1     run a peer
//	peer members                             list the cluster
//	peer ring [owner KEY]                    show the ring, or a key's owner
//	peer counter incr|decr KEY [N]           add to a cluster-wide counter
//	peer counter get KEY | list [PREFIX]     read counters
//	peer lock KEY -- CMD ARGS...             run CMD while holding lock KEY
//	peer lock acquire|renew|release|info KEY  take, renew, end or inspect a lock lease
//	peer force-leave NAME                    remove a failed member
//	peer simulate [--peers N] [--scenario NAME|FILE] [--seed S] [--speed X] [--out DIR]
//	                                         run peers under faults in one process; check them
//	peer simulate --list                     list the built-in scenarios
//	peer keygen                              make a cluster key
//	peer version                             print the version
//
// Every flag can also come from an environment variable PEER_<FLAG> (upper
// case, '-' as '_'); a flag on the command line wins.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// command is one subcommand.
type command struct {
	name    string
	args    string // argument synopsis for usage
	summary string
	notes   string // printed after the flags, if set
	flags   func(fs *pflag.FlagSet) func(args []string) error
}

func commands() []command {
	return []command{
		{name: "agent", summary: "run a peer (until SIGINT/SIGTERM, which leaves the cluster gracefully)", notes: agentNotes, flags: agentCommand},
		{name: "members", summary: "list the cluster's members as the local peer sees them", flags: membersCommand},
		{name: "counter", args: "incr|decr KEY [N] | get KEY | list [PREFIX]", summary: "increment, read and list cluster-wide counters", flags: counterCommand},
		{name: "lock", args: "KEY -- CMD [ARGS...] | acquire KEY | renew KEY LEASE | release KEY LEASE | info KEY", summary: "run a command while holding a cluster-wide lock, or take, renew, release and inspect lock leases", flags: lockCommand},
		{name: "ring", args: "[owner KEY]", summary: "show the ring, or the owner and preference list of KEY", flags: ringCommand},
		{name: "simulate", summary: "run real peers in one process on a faulty in-memory network and check counters, locks and membership", flags: simulateCommand},
		{name: "force-leave", args: "NAME", summary: "remove a failed member for good (it is marked left)", flags: forceLeaveCommand},
		{name: "keygen", summary: "print a new random cluster key for --encrypt", flags: keygenCommand},
		{name: "version", summary: "print the version", flags: versionCommand},
	}
}

// usageError is a mistake in how peer was called: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitStatus is an error that sets peer's exit status: CMD's own for
// 'peer lock KEY -- CMD'. msg, if set, is printed first.
type exitStatus struct {
	code int
	msg  string
}

func (e *exitStatus) Error() string { return fmt.Sprintf("exit status %d: %s", e.code, e.msg) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		mainUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "--help", "help":
		if len(args) > 1 && name == "help" {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		mainUsage(stdout)
		return exitOK
	case "-v", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		fs := pflag.NewFlagSet("peer "+c.name, pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		action := c.flags(fs)
		fs.Usage = func() {}
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, pflag.ErrHelp) {
				commandUsage(stdout, c, fs)
				return exitOK
			}
			fmt.Fprintf(stderr, "peer %s: %v%s\n\n", c.name, err, negativeHint(c.name, args[1:]))
			commandUsage(stderr, c, fs)
			return exitUsage
		}
		if err := applyEnv(fs); err != nil {
			fmt.Fprintf(stderr, "peer %s: %v\n", c.name, err)
			return exitUsage
		}
		out, errOut = stdout, stderr
		if err := action(fs.Args()); err != nil {
			var es *exitStatus
			if errors.As(err, &es) {
				if es.msg != "" {
					fmt.Fprintf(stderr, "peer %s: %s\n", c.name, es.msg)
				}
				return es.code
			}
			var ue *usageError
			if errors.As(err, &ue) {
				fmt.Fprintf(stderr, "peer %s: %s\n\n", c.name, cliMessage(err))
				commandUsage(stderr, c, fs)
				return exitUsage
			}
			fmt.Fprintf(stderr, "peer %s: %s\n", c.name, cliMessage(err))
			return exitFailure
		}
		return exitOK
	}
	fmt.Fprintf(stderr, "peer: unknown command %q\n\n", name)
	mainUsage(stderr)
	return exitUsage
}

// out is where commands print their results (stdout, or a test's buffer),
// and errOut where they report along the way (stderr).
var (
	out    io.Writer = os.Stdout
	errOut io.Writer = os.Stderr
)

// envName is the environment variable for a flag: PEER_<FLAG>.
func envName(flag string) string {
	return "PEER_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// notFromEnv are flags that name one request: an environment variable left
// set in a shell would silently apply them to every later command.
var notFromEnv = map[string]bool{"help": true, "idempotency-key": true}

// flagsHeader heads a list of flags in help texts; fs's flags are listed.
func flagsHeader(fs *pflag.FlagSet) string {
	if fs.Lookup("idempotency-key") != nil {
		return "Flags (each also from env PEER_<FLAG>, except --idempotency-key):\n"
	}
	return "Flags (each also from env PEER_<FLAG>):\n"
}

// fromEnvAnnotation marks a flag applyEnv set.
const fromEnvAnnotation = "peer-from-env"

// applyEnv sets every flag not given on the command line from its
// environment variable, if set, and marks it so (onCommandLine).
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || notFromEnv[f.Name] {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("environment %s=%q: %v", envName(f.Name), v, e)
			return
		}
		_ = fs.SetAnnotation(f.Name, fromEnvAnnotation, []string{"true"})
	})
	return err
}

// onCommandLine reports whether flag name was given on the command line
// (not left at its default, nor set from the environment). A flag set in
// the environment may be meant for other commands, so only one given on
// the command line is refused where it does not apply.
func onCommandLine(fs *pflag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Changed && f.Annotations[fromEnvAnnotation] == nil
}

func mainUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: peer COMMAND [flags]\n\n")
	fmt.Fprintf(w, "Ringleader peer: cluster membership, counters and locks without a central store.\n\n")
	fmt.Fprintf(w, "Commands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'peer COMMAND --help' for a command's flags. Every flag can also be set\n")
	fmt.Fprintf(w, "with an environment variable PEER_<FLAG> (for example PEER_HTTP_ADDR); a flag\n")
	fmt.Fprintf(w, "on the command line wins. Exit status: 0 ok, 1 failure, 2 usage error.\n")
}

func commandUsage(w io.Writer, c command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: peer %s [flags] %s\n\n%s.\n\n%s", c.name, c.args, upperFirst(c.summary), flagsHeader(fs))
	if !fs.HasFlags() {
		fmt.Fprintln(w, "  (none)")
		return
	}
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if c.notes != "" {
		fmt.Fprintf(w, "\n%s", c.notes)
	}
}

// negativeHint explains a flag error of 'peer counter' when an argument is
// a negative number, which the flag parser reads as flags: the only
// command with a number among its arguments.
func negativeHint(command string, args []string) string {
	if command != "counter" {
		return ""
	}
	for _, a := range args {
		if a == "--" {
			return ""
		}
		if len(a) > 1 && a[0] == '-' && strings.Trim(a[1:], "0123456789") == "" {
			return fmt.Sprintf(" (%s is read as flags; N is positive: to subtract, use 'peer counter decr KEY N')", a)
		}
	}
	return ""
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// cliMessage is err's text without the agent package's "agent: " prefix,
// which would follow "peer COMMAND: " to no purpose.
func cliMessage(err error) string { return strings.TrimPrefix(err.Error(), "agent: ") }
