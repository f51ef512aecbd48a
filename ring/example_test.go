package ring_test

import (
	"fmt"

	"github.com/ringleader/ringleader/ring"
)

func Example() {
	members := []ring.Member{
		{Name: "peer-a", Weight: 1},
		{Name: "peer-b", Weight: 1},
		{Name: "peer-c", Weight: 2}, // twice the capacity, about twice the keys
	}
	r, err := ring.New(members, ring.DefaultConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	owner, _ := r.Owner("lock/orders")
	replicas, _ := r.Preference("lock/orders", 2)
	fmt.Println(r.Len(), "members, checksum", r.ChecksumHex())
	fmt.Println("lock/orders is owned by", owner, "then", replicas[1])

	// A peer joins: build a new ring, and see what moved. Only keys moving to the
	// newcomer change hands.
	grown, _ := ring.New(append(members, ring.Member{Name: "peer-d", Weight: 1}), ring.DefaultConfig())
	d := ring.Diff(r, grown)
	for _, m := range d.Members {
		fmt.Printf("%s gained %.2f lost %.2f\n", m.Name, m.Gained, m.Lost)
	}

	_, err = grown.Owner("")
	fmt.Println(err)
	// Output:
	// 3 members, checksum 6acb4577100bf772
	// lock/orders is owned by peer-a then peer-c
	// peer-a gained 0.00 lost 0.04
	// peer-b gained 0.00 lost 0.05
	// peer-c gained 0.00 lost 0.10
	// peer-d gained 0.19 lost 0.00
	// ring: empty key
}
