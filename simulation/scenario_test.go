package simulation

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseSteps(t *testing.T) {
	sc, err := Parse("t", `
# comment
start 5   # five peers
partition n1..n{N/2} | rest
cut n1 -> n{N}
cut n1,n2 <-> n4
loss 20%
latency 5ms 2ms
pause n3 10s
skew n2 -500ms drift 0.001
crash n2
restart n2 --empty
leave n4
rolling-restart 1s
join n{N+1}
heal
wait converged 30s
run workload 1m
workload start
workload stop
sleep 2s
`, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sc.N != 5 || strings.Join(sc.Peers, ",") != "n1,n2,n3,n4,n5,n6" {
		t.Fatalf("N=%d peers=%v", sc.N, sc.Peers)
	}
	want := []string{"start", "partition", "cut", "cut", "loss", "latency", "pause", "skew", "crash", "restart", "leave", "rolling-restart", "join", "heal", "wait", "run", "workload", "workload", "sleep"}
	if len(sc.Steps) != len(want) {
		t.Fatalf("%d steps, want %d", len(sc.Steps), len(want))
	}
	for i, k := range want {
		if sc.Steps[i].Kind != k {
			t.Errorf("step %d is %s, want %s", i, sc.Steps[i].Kind, k)
		}
	}
	p := sc.Steps[1]
	if len(p.Groups) != 2 || strings.Join(p.Groups[0], ",") != "n1,n2" || strings.Join(p.Groups[1], ",") != "n3,n4,n5,n6" {
		t.Errorf("partition groups %v", p.Groups)
	}
	if c := sc.Steps[2]; c.Both || c.From[0] != "n1" || c.To[0] != "n5" {
		t.Errorf("cut %+v", c)
	}
	if c := sc.Steps[3]; !c.Both || len(c.From) != 2 {
		t.Errorf("cut both %+v", c)
	}
	if s := sc.Steps[7]; s.Duration != -500*time.Millisecond || s.Drift != 0.001 {
		t.Errorf("skew %+v", s)
	}
	if !sc.Steps[9].Empty || sc.Steps[14].Duration != 30*time.Second || sc.Steps[3].Line != 6 {
		t.Errorf("restart/wait/line: %+v %+v %+v", sc.Steps[9], sc.Steps[13], sc.Steps[3])
	}
	// --peers rewrites N everywhere.
	sc, err = Parse("t", "start 5\npartition n1..n{N/2} | rest\n", 50)
	if err != nil || len(sc.Steps[1].Groups[0]) != 25 || len(sc.Steps[1].Groups[1]) != 25 {
		t.Fatalf("peers 50: %v %v", err, sc)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, text string
		line       int
		want       string
	}{
		{"empty", "# nothing\n", 1, "begin with `start N`"},
		{"no start", "heal\n", 1, "begins with `start N`"},
		{"bad count", "start zero\n", 1, "peer count"},
		{"start twice", "start 3\nstart 3\n", 2, "start comes once"},
		{"unknown step", "start 3\n\nexplode n1\n", 3, "unknown step"},
		{"unknown peer", "start 3\ncrash n4\n", 2, "not in this scenario"},
		{"bad name", "start 3\ncrash x1\n", 2, "peers are named"},
		{"bad expr", "start 3\ncrash n{M}\n", 2, "write the number as"},
		{"empty range", "start 3\ncrash n3..n1\n", 2, "is empty"},
		{"two peers", "start 3\ncrash n1,n2\n", 2, "give one"},
		{"one group", "start 3\npartition n1,n2\n", 2, "at least two groups"},
		{"twice", "start 3\npartition n1 | n1,n2\n", 2, "in two groups"},
		{"rest empty", "start 2\npartition n1,n2 | rest\n", 2, "rest is empty"},
		{"bad loss", "start 3\nloss 120%\n", 2, "percentage"},
		{"loss no percent", "start 3\nloss 20\n", 2, "percentage"},
		{"bad duration", "start 3\nsleep soon\n", 2, "duration"},
		{"zero duration", "start 3\nsleep 0s\n", 2, "more than 0"},
		{"cut arrow", "start 3\ncut n1 => n2\n", 2, "use ->"},
		{"cut self", "start 3\ncut n1 -> n1\n", 2, "both sides"},
		{"restart flag", "start 3\nrestart n1 --wipe\n", 2, "--empty"},
		{"wait what", "start 3\nwait ready\n", 2, "converged"},
		{"run what", "start 3\nrun chaos 2s\n", 2, "workload"},
		{"drift", "start 3\nskew n1 1s drift 0.5\n", 2, "drift"},
		{"args", "start 3\nheal now\n", 2, "want `heal`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("s.txt", tt.text, 0)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a ParseError", err)
			}
			if pe.Line != tt.line || !strings.Contains(pe.Msg, tt.want) {
				t.Fatalf("error %q at line %d; want line %d and %q", pe.Msg, pe.Line, tt.line, tt.want)
			}
		})
	}
}

func TestLibraryParses(t *testing.T) {
	lib := Library()
	if len(lib) != 9 {
		t.Fatalf("%d built-in scenarios, want 9", len(lib))
	}
	for _, b := range lib {
		for _, peers := range []int{0, 3, 50} {
			if _, err := LookupBuiltIn(b.Name, peers); err != nil {
				t.Errorf("%s with %d peers: %v", b.Name, peers, err)
			}
		}
		if b.Summary == "" {
			t.Errorf("%s has no summary comment", b.Name)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range Library() {
		f.Add(b.Text, 0)
	}
	f.Add("start 3\npartition n1..n{N/2+1} | rest\ncut n1 <-> n{N-1}\n", 7)
	f.Fuzz(func(t *testing.T, text string, peers int) {
		if peers > 1000 || peers < 0 {
			peers = 0
		}
		sc, err := Parse("fuzz", text, peers)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error %v is not a ParseError with a line", err)
			}
			return
		}
		if len(sc.Steps) == 0 || sc.Steps[0].Kind != StepStart || sc.N < 1 {
			t.Fatalf("parsed without a start step: %+v", sc)
		}
	})
}
