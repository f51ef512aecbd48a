package simulation_test

import (
	"fmt"

	"github.com/ringleader/ringleader/simulation"
)

// A scenario is data. Peer names written with N follow the peer count, so
// one file serves 5 peers or 50.
func ExampleParse() {
	sc, err := simulation.Parse("example", `
start 5
partition n1..n{N/2} | rest   # two halves
run workload 10s
heal
wait converged 30s
`, 7)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, st := range sc.Steps {
		fmt.Println(st.Line, st.Kind, st.Groups, st.Duration)
	}
	_, err = simulation.Parse("broken", "start 3\ncrash n9\n", 0)
	fmt.Println(err)
	// Output:
	// 2 start [] 0s
	// 3 partition [[n1 n2 n3] [n4 n5 n6 n7]] 0s
	// 4 run [] 10s
	// 5 heal [] 0s
	// 6 wait [] 30s
	// broken:2: peer n9 is not in this scenario: start 3 makes n1..n3, and join adds more
}
