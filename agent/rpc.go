package agent

import (
	"context"
	"fmt"

	"github.com/ringleader/ringleader/agent/peerrpc"
)

// Peer RPC methods.
const methodPing = "ping"

type pingRequest struct {
	From string `msgpack:"from"`
}

type pingResponse struct {
	Name string `msgpack:"name"`
}

// rpcConfig is the peer RPC configuration for both sides.
func (a *Agent) rpcConfig() (peerrpc.Config, error) {
	cfg := peerrpc.DefaultConfig()
	cfg.DefaultTimeout = a.cfg.RPCTimeout
	cfg.Logger = a.log
	cfg.Dial = a.cfg.RPCTransport.DialContext
	cfg.OnBytes = a.metrics.rpcBytes
	if len(a.cfg.EncryptKey) > 0 {
		auth, err := peerrpc.NewAuth(a.cfg.EncryptKey, peerrpc.DefaultAuthWindow, a.clock.Now)
		if err != nil {
			return cfg, err
		}
		cfg.Auth = auth
	}
	return cfg, nil
}

// listenRPC opens the peer RPC listener and the client. The server starts
// in serveRPC, once the advertised address (which signed requests name) is
// known.
func (a *Agent) listenRPC() error {
	cfg, err := a.rpcConfig()
	if err != nil {
		return err
	}
	client, err := peerrpc.NewClient(cfg)
	if err != nil {
		return err
	}
	l, err := a.cfg.RPCTransport.Listen(a.cfg.RPCAddr)
	if err != nil {
		client.Close()
		return fmt.Errorf("agent: peer rpc listen on %s: %w", a.cfg.RPCAddr, err)
	}
	addr := a.cfg.RPCAdvertiseAddr
	if addr == "" {
		addr = l.Addr().String()
	}
	a.mu.Lock()
	a.rpcClient, a.rpcListener, a.rpcAddr = client, l, addr
	a.mu.Unlock()
	return nil
}

// serveRPC starts the peer RPC server on the listener.
func (a *Agent) serveRPC() error {
	cfg, err := a.rpcConfig()
	if err != nil {
		return err
	}
	a.mu.Lock()
	cfg.Self = a.rpcAddr
	l := a.rpcListener
	a.rpcListener = nil
	a.mu.Unlock()
	server, err := peerrpc.NewServer(cfg)
	if err != nil {
		l.Close()
		return err
	}
	for _, err := range []error{
		peerrpc.Handle(server, methodPing, a.handlePing),
		peerrpc.Handle(server, methodIdentity, a.handleIdentity),
		peerrpc.Handle(server, methodPush, a.handlePush),
		peerrpc.Handle(server, methodStates, a.handleStates),
		peerrpc.Handle(server, methodAEDigest, a.handleAEDigest),
		peerrpc.Handle(server, methodAEDiff, a.handleAEDiff),
		peerrpc.Handle(server, methodAdd, a.handleAdd),
		peerrpc.Handle(server, methodIdemGet, a.handleIdemGet),
		peerrpc.Handle(server, methodIdemPut, a.handleIdemPut),
		peerrpc.Handle(server, methodIdemPull, a.handleIdemPull),
		peerrpc.Handle(server, methodLockPromise, a.handleLockPromise),
		peerrpc.Handle(server, methodLockOp, a.handleLockOp),
		peerrpc.Handle(server, methodLockHandoff, a.handleLockHandoff),
		peerrpc.Handle(server, methodVoterMsg, a.handleVoterMsg),
		peerrpc.Handle(server, methodVoterGet, a.handleVoterGet),
	} {
		if err != nil {
			l.Close()
			return err
		}
	}
	a.mu.Lock()
	a.rpcServer = server
	a.mu.Unlock()
	return server.Serve(l)
}

func (a *Agent) handlePing(ctx context.Context, req *pingRequest) (*pingResponse, error) {
	return &pingResponse{Name: a.cfg.NodeName}, nil
}

// Ping calls a ring member over peer RPC and returns the name it answers
// with.
func (a *Agent) Ping(ctx context.Context, member string) (string, error) {
	addr, ok := a.view.load().RPC[member]
	if !ok {
		return "", fmt.Errorf("%w: %q is not an alive peer", ErrUnknownMember, member)
	}
	return a.pingAddr(ctx, addr)
}

func (a *Agent) pingAddr(ctx context.Context, addr string) (string, error) {
	a.mu.Lock()
	c := a.rpcClient
	a.mu.Unlock()
	if c == nil {
		return "", ErrNotStarted
	}
	var resp pingResponse
	if err := c.Call(ctx, addr, methodPing, &pingRequest{From: a.cfg.NodeName}, &resp); err != nil {
		return "", err
	}
	return resp.Name, nil
}

// call makes one peer RPC call to addr.
func (a *Agent) call(ctx context.Context, addr, method string, req, resp any) error {
	a.mu.Lock()
	c := a.rpcClient
	a.mu.Unlock()
	if c == nil {
		return ErrNotStarted
	}
	return c.Call(ctx, addr, method, req, resp)
}
