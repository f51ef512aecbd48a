package main

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// redisSessions prepares mode redis: each session keeps one TCP connection
// to cfg.redisAddr and sends RESP "INCR key" one at a time (no
// pipelining), reading each reply before the next command. The commands
// of all keys are encoded once, here.
func redisSessions(cfg config, dials *atomic.Int64) (func(int) session, func()) {
	cmds := make([][]byte, cfg.keys)
	for i := range cmds {
		k := keyName(cfg, i)
		cmds[i] = []byte("*2\r\n$4\r\nINCR\r\n$" + strconv.Itoa(len(k)) + "\r\n" + k + "\r\n")
	}
	newSession := func(worker int) session {
		return &redisSession{
			cfg:   cfg,
			dials: dials,
			cmds:  cmds,
			rng:   rand.New(rand.NewPCG(cfg.seed, uint64(worker))),
		}
	}
	return newSession, func() {}
}

// redisSession is one worker's connection. Only its goroutine uses it.
type redisSession struct {
	cfg   config
	dials *atomic.Int64
	cmds  [][]byte // shared, read only
	rng   *rand.Rand
	conn  net.Conn // nil until dialled, and after an error
	r     *bufio.Reader
}

func (s *redisSession) do() outcome {
	if s.conn == nil {
		s.dials.Add(1)
		c, err := net.DialTimeout("tcp", s.cfg.redisAddr, s.cfg.timeout)
		if err != nil {
			return outcome{class: netClass(err)}
		}
		s.conn, s.r = c, bufio.NewReaderSize(c, 4096)
	}
	cmd := s.cmds[s.rng.IntN(len(s.cmds))]
	s.conn.SetDeadline(time.Now().Add(s.cfg.timeout))
	if _, err := s.conn.Write(cmd); err != nil {
		s.close()
		return outcome{class: netClass(err)}
	}
	line, err := s.r.ReadSlice('\n')
	if err != nil {
		s.close()
		return outcome{class: netClass(err)}
	}
	line = bytes.TrimSuffix(line, []byte("\r\n"))
	switch {
	case len(line) > 1 && line[0] == ':':
		if _, err := strconv.ParseInt(string(line[1:]), 10, 64); err == nil {
			return outcome{answered: true, items: 1}
		}
	case len(line) > 0 && line[0] == '-': // an error reply, e.g. a full disk
		return outcome{answered: true, class: "redis-error"}
	}
	// Anything else leaves the stream in an unknown state.
	s.close()
	return outcome{answered: true, class: "bad-answer"}
}

func (s *redisSession) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn, s.r = nil, nil
	}
}
