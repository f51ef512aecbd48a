package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/pflag"

	"github.com/ringleader/ringleader/agent/client"
)

// subcommand is one of the subcommands of peer counter or peer lock, for
// help and argument checks.
type subcommand struct {
	name    string
	args    string
	summary string
	help    string   // more lines for 'peer counter|lock NAME --help'
	flags   []string // the flags that apply, besides the shared ones
}

// findSubcommand returns the subcommand called name, or nil.
func findSubcommand(subs []subcommand, name string) *subcommand {
	for i := range subs {
		if subs[i].name == name {
			return &subs[i]
		}
	}
	return nil
}

var counterSubcommands = []subcommand{
	{
		name: "incr", args: "KEY [N]",
		summary: "add N (a positive integer, default 1) to counter KEY and print its new value",
		help: "The increment is durable on the local peer before it answers; with\n" +
			"--consistency majority, also on a strict majority of the voters (if that\n" +
			"fails, the increment still happened locally and the command exits 1).\n" +
			"A retry with the same --idempotency-key is applied once and prints the\n" +
			"first answer.",
		flags: []string{"consistency", "idempotency-key"},
	},
	{
		name: "decr", args: "KEY [N]",
		summary: "subtract N (a positive integer, default 1) from counter KEY and print its new value",
		help:    "Counters may go below zero. Otherwise as 'peer counter incr'.",
		flags:   []string{"consistency", "idempotency-key"},
	},
	{
		name: "get", args: "KEY",
		summary: "print the value of counter KEY (a key never written reads 0)",
		help: "With --consistency majority, the peer first merges the state of a strict\n" +
			"majority of the voters, so the value includes every increment a majority\n" +
			"write acknowledged, through any peer.",
		flags: []string{"consistency"},
	},
	{
		name: "list", args: "[PREFIX]",
		summary: "print the counters whose keys start with PREFIX, as KEY VALUE lines in key order",
		help: "Reads the local peer's state, page by page, until the end or --limit.\n" +
			"When --limit stops it before the end, it says which key to give --after\n" +
			"to go on (with --json, as \"next\"). A counter whose merged value\n" +
			"overflowed int64 shows its error in place of the value, and the command\n" +
			"then exits 1 after the listing. A key with a space, a quote or a character\n" +
			"that does not print is shown quoted (\"a b\"); scripts should use --json.",
		flags: []string{"limit", "after"},
	},
}

// counterPageSize is how many counters 'peer counter list' asks for per
// request (the API allows up to 10,000).
const counterPageSize = 1000

func counterCommand(fs *pflag.FlagSet) func([]string) error {
	c := clientFlags(fs)
	consistency := fs.String("consistency", "local", "local (answer from this peer's durable state) or majority (a strict majority of the voters); incr, decr and get")
	idemKey := fs.String("idempotency-key", "", "incr, decr: a retry with the same key (1-255 printable ASCII characters) within the peer's window is applied once")
	limit := fs.Int("limit", 0, "list: print at most this many counters (0: all)")
	after := fs.String("after", "", "list: start after this key (to go on from where a --limit stopped)")
	// Defined here so --help reaches the action, which knows the subcommand.
	help := fs.BoolP("help", "h", false, "show help for peer counter or one of its subcommands")
	return func(args []string) error {
		if *help {
			return counterHelp(fs, args)
		}
		if len(args) == 0 {
			return usagef("give a subcommand: incr, decr, get or list")
		}
		sub := findSubcommand(counterSubcommands, args[0])
		if sub == nil {
			return usagef("unknown subcommand %q: use incr, decr, get or list", args[0])
		}
		args = args[1:]
		if *consistency != "local" && *consistency != "majority" {
			return usagef("--consistency %q: use local or majority", *consistency)
		}
		if err := checkCounterFlags(fs, sub); err != nil {
			return err
		}
		switch sub.name {
		case "incr", "decr":
			if len(args) < 1 || len(args) > 2 {
				hint := ""
				if fs.ArgsLenAtDash() >= 0 {
					hint = " (after --, flags are arguments too)"
				}
				return usagef("%s: want KEY [N], got %d arguments %q%s", sub.name, len(args), args, hint)
			}
			delta := int64(1)
			if len(args) == 2 {
				// Up to 2^63-1 to add, 2^63 to subtract: the int64 range.
				most := uint64(1<<63 - 1)
				if sub.name == "decr" {
					most++
				}
				n, err := strconv.ParseUint(args[1], 10, 64)
				if err != nil || n == 0 || n > most {
					return usagef("%s: N %q: want a positive integer up to %d", sub.name, args[1], most)
				}
				delta = int64(n) // 2^63 wraps to -2^63, which decr keeps
			}
			if sub.name == "decr" && delta > 0 {
				delta = -delta
			}
			return counterIncr(c, args[0], delta, *consistency, *idemKey, fs.Changed("idempotency-key"))
		case "get":
			if len(args) != 1 {
				return usagef("get: want exactly one KEY")
			}
			return counterGet(c, args[0], *consistency)
		default: // list
			if len(args) > 1 {
				return usagef("list: want at most one PREFIX")
			}
			if *limit < 0 {
				return usagef("--limit %d: want 0 (all) or more", *limit)
			}
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			return counterList(c, prefix, *after, *limit)
		}
	}
}

// checkCounterFlags refuses a flag given on the command line that the
// subcommand does not use, rather than ignore it (one from the environment
// may be meant for the other subcommands, so it is let be).
func checkCounterFlags(fs *pflag.FlagSet, sub *subcommand) error {
	for _, name := range []string{"consistency", "idempotency-key", "limit", "after"} {
		if !onCommandLine(fs, name) {
			continue
		}
		applies := false
		for _, f := range sub.flags {
			applies = applies || f == name
		}
		if name == "consistency" && sub.name == "list" {
			v := fs.Lookup(name).Value.String()
			if v == "local" {
				continue // what list does anyway
			}
			return usagef("list reads the local peer's state only; --consistency %s applies to incr, decr and get", v)
		}
		if !applies {
			return usagef("--%s does not apply to %s", name, sub.name)
		}
	}
	return nil
}

func counterIncr(c apiClient, key string, delta int64, consistency, idemKey string, idemGiven bool) error {
	if key == "" {
		return usagef("KEY is empty")
	}
	opts := client.AddOptions{Consistency: client.Consistency(consistency)}
	if idemGiven {
		if err := checkIdempotencyKey(idemKey); err != nil {
			return err
		}
		opts.IdempotencyKey = idemKey
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	r, err := cl.Add(context.Background(), key, delta, opts)
	if err != nil {
		return c.explain(err)
	}
	return printCounter(c, key, r.Value)
}

// checkIdempotencyKey applies the API's rule: 1-255 printable ASCII bytes.
func checkIdempotencyKey(k string) error {
	if len(k) < 1 || len(k) > 255 {
		return usagef("--idempotency-key: %d bytes; want 1 to 255", len(k))
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return usagef("--idempotency-key: byte %d (%#02x) is not printable ASCII", i, k[i])
		}
	}
	return nil
}

func counterGet(c apiClient, key, consistency string) error {
	if key == "" {
		return usagef("KEY is empty")
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	v, err := cl.Counter(context.Background(), key, client.Consistency(consistency))
	if err != nil {
		return c.explain(err)
	}
	return printCounter(c, key, v)
}

// printCounter prints the value alone, or the API's JSON with --json.
func printCounter(c apiClient, key string, v int64) error {
	if *c.json {
		return printJSON(client.CounterEntry{Key: key, Value: &v})
	}
	_, err := fmt.Fprintln(out, v)
	return err
}

func writeJSONLine(b []byte) error {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	_, err := out.Write(b)
	return err
}

// counterList prints the counters under prefix, following the API's cursor
// page by page, at most limit of them (0: all). Each page is printed as it
// comes, so memory stays bounded however many counters there are; a key
// longer than those of the first page pushes its own page's values right.
// listedKey is how the list table shows a key: as it is, or, if it has a
// space, a quote or a character that does not print (which would make the
// columns ambiguous), quoted as a Go string ("a b", "say \"hi\"").
func listedKey(k string) string {
	for _, r := range k {
		if r == ' ' || r == '"' || !unicode.IsPrint(r) {
			return strconv.Quote(k)
		}
	}
	return k
}

func counterList(c apiClient, prefix, after string, limit int) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	var (
		tw      = new(tabwriter.Writer)
		printed int
		failed  int
		first   string // the first item error
		last    string // the last key printed
		more    bool   // --limit stopped the listing before the end
	)
	for pages := 0; ; pages++ {
		size := counterPageSize
		if limit > 0 && limit-printed < size {
			size = limit - printed
		}
		page, err := cl.ListCounters(context.Background(), client.ListOptions{Prefix: prefix, After: after, Limit: size})
		if err != nil {
			return c.explain(err)
		}
		if pages == 0 { // after the first answer, so an error prints nothing
			if *c.json {
				fmt.Fprint(out, `{"counters":[`)
			} else {
				// Every page's key column is at least as wide as the
				// first's, so short pages stay aligned under the header.
				width := len("KEY")
				for _, it := range page.Counters {
					width = max(width, utf8.RuneCountInString(listedKey(it.Key)))
				}
				tw.Init(out, width+2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KEY\tVALUE")
			}
		}
		for _, it := range page.Counters {
			if limit > 0 && printed == limit {
				more = true
				break
			}
			printed++
			last = it.Key
			if it.Value == nil {
				failed++
				if first == "" {
					first = fmt.Sprintf("%s: %s", it.Key, it.Error)
				}
			}
			if *c.json {
				b, err := json.Marshal(it)
				if err != nil {
					return err
				}
				if printed > 1 {
					fmt.Fprint(out, ",")
				}
				out.Write(b)
				continue
			}
			v := "error: " + it.Error
			if it.Value != nil {
				v = strconv.FormatInt(*it.Value, 10)
			}
			fmt.Fprintf(tw, "%s\t%s\n", listedKey(it.Key), v)
		}
		if !*c.json {
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		if page.Next == "" {
			break
		}
		if limit > 0 && printed == limit {
			more = true
			break
		}
		// Keys come in order, so each cursor is past the last; a cursor
		// that does not advance would repeat a page forever.
		if page.Next <= after {
			return fmt.Errorf("the peer's list cursor went from %q back to %q; stopping", after, page.Next)
		}
		after = page.Next
	}
	if *c.json {
		fmt.Fprint(out, "]")
		if more {
			b, _ := json.Marshal(last)
			fmt.Fprintf(out, `,"next":%s`, b)
		}
		fmt.Fprintln(out, "}")
	} else if more {
		fmt.Fprintf(errOut, "stopped at --limit %d; go on with --after %s\n", limit, shellQuote(last))
	}
	if failed > 0 {
		return fmt.Errorf("%d of the listed counters have no value (first: %s)", failed, first)
	}
	return nil
}

// counterHelp prints help for peer counter, or for the subcommand named in
// args, on stdout.
func counterHelp(fs *pflag.FlagSet, args []string) error {
	if len(args) > 0 {
		sub := findSubcommand(counterSubcommands, args[0])
		if sub == nil {
			return usagef("unknown subcommand %q: use incr, decr, get or list", args[0])
		}
		printSubcommand(fs, "counter", sub)
		return nil
	}
	fmt.Fprintf(out, "Usage: peer counter [flags] SUBCOMMAND ARGS\n\n")
	fmt.Fprintf(out, "Increment, read and list cluster-wide counters. incr, decr and get print\n")
	fmt.Fprintf(out, "the value alone (or the API's JSON with --json).\n\nSubcommands:\n")
	printSubcommands(fs, "counter", counterSubcommands)
	return nil
}

// printSubcommand prints the help of one subcommand of peer cmd: usage,
// summary, details and the flags that apply.
func printSubcommand(fs *pflag.FlagSet, cmd string, sub *subcommand) {
	fmt.Fprintf(out, "Usage: peer %s %s [flags] %s\n\n%s.\n\n%s\n\n", cmd, sub.name, sub.args, upperFirst(sub.summary), sub.help)
	printFlags(fs, append(append([]string{}, sub.flags...), "http-addr", "json", "help"))
}

// printSubcommands lists subs one a line, then every flag of fs.
func printSubcommands(fs *pflag.FlagSet, cmd string, subs []subcommand) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, sub := range subs {
		fmt.Fprintf(tw, "  %s %s\t%s\n", sub.name, sub.args, sub.summary)
	}
	tw.Flush()
	fmt.Fprintf(out, "\nRun 'peer %s SUBCOMMAND --help' for more.\n\n", cmd)
	printFlags(fs, nil)
}

// printFlags prints the named flags of fs (all when names is nil).
func printFlags(fs *pflag.FlagSet, names []string) {
	show := fs
	if names != nil {
		show = pflag.NewFlagSet("", pflag.ContinueOnError)
		for _, n := range names {
			show.AddFlag(fs.Lookup(n))
		}
	}
	fmt.Fprint(out, flagsHeader(show))
	show.SetOutput(out)
	show.PrintDefaults()
	show.SetOutput(io.Discard)
}

// shellQuote quotes s for a POSIX shell unless it needs no quotes.
func shellQuote(s string) string {
	plain, printable := s != "", true
	for _, r := range s {
		plain = plain && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.,:/@%+=", r))
		printable = printable && unicode.IsPrint(r)
	}
	switch {
	case plain:
		return s
	case printable:
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	// A character that does not show (U+200B, U+00A0) would be lost in
	// copying the hint: bash's $'...' names its UTF-8 bytes instead (\x,
	// which unlike \u does not depend on the locale).
	var b strings.Builder
	b.WriteString("$'")
	for _, r := range s {
		switch {
		case r == '\\' || r == '\'':
			b.WriteByte('\\')
			b.WriteRune(r)
		case !unicode.IsPrint(r):
			for _, c := range []byte(string(r)) {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
