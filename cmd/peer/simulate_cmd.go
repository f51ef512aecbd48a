package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/ringleader/ringleader/simulation"
)

func simulateCommand(fs *pflag.FlagSet) func([]string) error {
	def := simulation.DefaultConfig()
	peers := fs.Int("peers", 0, "peers to start (default: the scenario's own count, 5 for the built-in ones)")
	scenario := fs.String("scenario", "halves", "a built-in scenario (see --list) or a scenario file")
	seed := fs.Uint64("seed", def.Seed, "seed of the workload and of the network's random faults; the same seed sends the same requests")
	speed := fs.Float64("speed", 0, "how many times faster than real time to run: every timing of the agents and every duration in the scenario is divided by it (default: 4 up to 10 peers, 2 up to 25, 1 up to 100, else 0.5)")
	clients := fs.Int("clients", def.Clients, "workload clients writing counters through random peers")
	keys := fs.Int("keys", def.Keys, "counter keys the workload writes")
	lockClients := fs.Int("lock-clients", def.LockClients, "workload clients acquiring, holding and releasing locks through random peers (0: none)")
	lockKeys := fs.Int("lock-keys", def.LockKeys, "lock keys they contend for")
	outDir := fs.String("out", "", "directory for summary.txt, report.json (the full history) and timeline.svg; empty writes none")
	timeout := fs.Duration("timeout", 15*time.Minute, "stop the run (and fail) after this much wall time")
	quiet := fs.Bool("quiet", false, "do not print each step as it starts")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (every agent, the network and the checkers) to this file, for go tool pprof")
	list := fs.Bool("list", false, "list the built-in scenarios and exit")
	return func(args []string) error {
		if len(args) > 0 {
			return usagef("unexpected argument %q", args[0])
		}
		if *list {
			for _, b := range simulation.Library() {
				fmt.Fprintf(out, "%-22s %s\n", b.Name, b.Summary)
			}
			return nil
		}
		cfg := def
		cfg.Peers, cfg.Seed, cfg.Speed, cfg.Clients, cfg.Keys = *peers, *seed, *speed, *clients, *keys
		cfg.LockClients, cfg.LockKeys = *lockClients, *lockKeys
		if err := cfg.Validate(); err != nil {
			return usagef("%v", err)
		}
		sc, err := loadScenario(*scenario, *peers)
		if err != nil {
			return usagef("%v", err)
		}
		if !*quiet {
			cfg.Progress = os.Stderr
		}
		if *cpuProfile != "" {
			stopProfile, err := startCPUProfile(*cpuProfile)
			if err != nil {
				return err
			}
			defer stopProfile()
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		rep, runErr := simulation.Run(ctx, cfg, sc)
		if rep == nil {
			return runErr
		}
		fmt.Fprintln(out)
		rep.WriteSummary(out)
		if *outDir != "" {
			if err := rep.WriteDir(*outDir); err != nil {
				return err
			}
			fmt.Fprintf(out, "\nwrote %s, %s and %s\n", filepath.Join(*outDir, simulation.SummaryFile),
				filepath.Join(*outDir, simulation.ReportFile), filepath.Join(*outDir, simulation.TimelineFile))
		}
		if runErr != nil {
			return runErr
		}
		if !rep.OK() {
			return errors.New("invariants violated (see above)")
		}
		return nil
	}
}

// startCPUProfile starts Go's CPU profiler writing to path and returns
// what stops it and closes the file.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "--cpuprofile: %v\n", err)
		}
	}, nil
}

// loadScenario returns the built-in scenario name, or else parses the file
// it names.
func loadScenario(name string, peers int) (*simulation.Scenario, error) {
	for _, b := range simulation.Library() {
		if b.Name == name {
			return simulation.LookupBuiltIn(name, peers)
		}
	}
	text, err := os.ReadFile(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("--scenario %q is neither a built-in scenario (see --list) nor a file", name)
		}
		return nil, err
	}
	return simulation.Parse(name, string(text), peers)
}
