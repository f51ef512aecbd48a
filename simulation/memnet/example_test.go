package memnet_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/ringleader/ringleader/simulation/memnet"
)

// Two hosts: one listens, the other dials it and gets an echo back; then a
// cut between them makes a new dial time out.
func Example() {
	network, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	a, _ := network.AddHost("10.0.0.1")
	b, _ := network.AddHost("10.0.0.2")

	ln, err := b.Listen(":7947")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() { // echo one line, in capitals
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprint(c, strings.ToUpper(line))
	}()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := a.DialContext(ctx, "10.0.0.2:7947")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("connected to", c.RemoteAddr())
	fmt.Fprintln(c, "hello")
	reply, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Print(reply)
	c.Close()
	<-served

	_ = network.Cut("10.0.0.1", "10.0.0.2")
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = a.DialContext(ctx, "10.0.0.2:7947")
	var netErr net.Error
	fmt.Println("after the cut, timeout:", errors.As(err, &netErr) && netErr.Timeout())
	// Output:
	// connected to 10.0.0.2:7947
	// HELLO
	// after the cut, timeout: true
}
