package peerrpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Handler serves one method. It gets the raw msgpack request body and returns
// the raw response body. It must honour ctx, which carries the caller's
// deadline; it is called concurrently.
type Handler func(ctx context.Context, body []byte) ([]byte, error)

// Config holds the settings shared by Server and Client.
type Config struct {
	// MaxFrameSize bounds every frame read or written, in bytes.
	MaxFrameSize int
	// Auth signs and checks frames; nil means the cluster has no key and
	// frames are neither signed nor checked.
	Auth *Auth
	// MaxInFlight bounds the requests one connection may have in service at
	// once; the server stops reading that connection until one finishes.
	MaxInFlight int
	// MaxHandlerTime caps the deadline a caller may ask of a handler.
	MaxHandlerTime time.Duration
	// DefaultTimeout is a call's deadline when its context has none. A
	// call that waits half of it (at most a second) with nothing read on its
	// connection meanwhile drops the connection as stuck.
	DefaultTimeout time.Duration
	// Self is the address clients dial this server at (Server only, with
	// Auth): signed requests name the address they were sent to, so a
	// request recorded on its way to another peer is refused here.
	Self string
	// MaxConns bounds the connections a server keeps open at once; more are
	// closed as soon as they are accepted.
	MaxConns int
	// IdleTimeout closes a server connection that starts no frame for this
	// long; FrameTimeout bounds the reading of one frame once it started,
	// so a peer that sends a header and stalls cannot hold the memory.
	IdleTimeout  time.Duration
	FrameTimeout time.Duration
	// ReadBudget bounds the bytes of frames being read at once over all of a
	// server's connections; a frame that does not fit closes its connection.
	// With MaxFrameSize it bounds what unauthenticated senders can pin.
	ReadBudget int64
	// Dial opens a connection to a peer (Client only).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Logger gets connection-level problems; nil discards them.
	Logger *slog.Logger
	// OnBytes, if set, is told of every frame's size, sent or received. It
	// must be cheap and safe for concurrent use (a metrics counter).
	OnBytes func(sent bool, n int)
}

// DefaultConfig returns settings for a LAN cluster.
func DefaultConfig() Config {
	return Config{
		MaxFrameSize:   4 << 20,
		MaxInFlight:    64,
		MaxHandlerTime: 30 * time.Second,
		DefaultTimeout: 2 * time.Second,
		MaxConns:       512,
		IdleTimeout:    5 * time.Minute,
		FrameTimeout:   10 * time.Second,
		ReadBudget:     64 << 20,
	}
}

// Validate reports the first unusable setting.
func (c Config) Validate() error {
	switch {
	case c.MaxFrameSize < 1024:
		return fmt.Errorf("peerrpc: MaxFrameSize %d is below 1024 bytes", c.MaxFrameSize)
	case c.MaxInFlight < 1:
		return fmt.Errorf("peerrpc: MaxInFlight %d must be at least 1", c.MaxInFlight)
	case c.MaxHandlerTime <= 0:
		return fmt.Errorf("peerrpc: MaxHandlerTime %v must be positive", c.MaxHandlerTime)
	case c.DefaultTimeout <= 0:
		return fmt.Errorf("peerrpc: DefaultTimeout %v must be positive", c.DefaultTimeout)
	case c.MaxConns < 1:
		return fmt.Errorf("peerrpc: MaxConns %d must be at least 1", c.MaxConns)
	case c.IdleTimeout <= 0 || c.FrameTimeout <= 0:
		return fmt.Errorf("peerrpc: IdleTimeout %v and FrameTimeout %v must be positive", c.IdleTimeout, c.FrameTimeout)
	case c.ReadBudget < int64(c.MaxFrameSize):
		return fmt.Errorf("peerrpc: ReadBudget %d must be at least MaxFrameSize %d", c.ReadBudget, c.MaxFrameSize)
	}
	return nil
}

// stuckAfter is how long a call waits, with nothing read on its connection
// meanwhile, before the client takes the connection for stuck.
func (c Config) stuckAfter() time.Duration { return min(c.DefaultTimeout/2, time.Second) }

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c Config) countBytes(sent bool, n int) {
	if c.OnBytes != nil {
		c.OnBytes(sent, n)
	}
}

// Server answers peer RPC requests on the listeners given to Serve.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// reading is the bytes of frames being read now (ReadBudget).
	reading atomic.Int64

	// mu guards handlers, listeners, conns and closed.
	mu        sync.Mutex
	handlers  map[string]Handler
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	closed    bool
}

// NewServer returns a server with no methods; add them with Register.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, log: cfg.logger(), ctx: ctx, cancel: cancel,
		handlers:  make(map[string]Handler),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
	}, nil
}

// Register adds a method. It may be called while serving.
func (s *Server) Register(method string, h Handler) error {
	if method == "" || len(method) > maxMethodLen {
		return fmt.Errorf("peerrpc: method name %q must be 1-%d bytes", method, maxMethodLen)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.handlers[method]; dup {
		return fmt.Errorf("peerrpc: method %q registered twice", method)
	}
	s.handlers[method] = h
	return nil
}

// Handle registers a typed method: requests are decoded into Req (after
// CheckMsgpack) and the returned Resp is encoded back.
func Handle[Req, Resp any](s *Server, method string, h func(context.Context, *Req) (*Resp, error)) error {
	return s.Register(method, func(ctx context.Context, body []byte) ([]byte, error) {
		req := new(Req)
		if err := Unmarshal(body, req); err != nil {
			return nil, WithCode(CodeBadRequest, err)
		}
		resp, err := h(ctx, req)
		if err != nil {
			return nil, err
		}
		return msgpack.Marshal(resp)
	})
}

// Unmarshal decodes a msgpack body after checking it with CheckMsgpack.
func Unmarshal(body []byte, v any) error {
	if err := CheckMsgpack(body); err != nil {
		return err
	}
	if err := msgpack.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	return nil
}

// Serve accepts connections on l in a goroutine the server owns, until
// Close. The server closes l.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		l.Close()
		return ErrClosed
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	go s.accept(l)
	return nil
}

func (s *Server) accept(l net.Listener) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if s.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("peer rpc accept failed; listener stopped", "err", err)
			}
			return
		}
		if !s.track(c) {
			c.Close()
			return
		}
		s.mu.Lock()
		_, tracked := s.conns[c]
		s.mu.Unlock()
		if !tracked {
			continue // refused: over MaxConns
		}
		s.wg.Add(1)
		go s.serveConn(c)
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if len(s.conns) >= s.cfg.MaxConns {
		s.log.Warn("peer rpc: too many connections; refusing one", "remote", c.RemoteAddr().String(), "limit", s.cfg.MaxConns)
		c.Close()
		return true
	}
	s.conns[c] = struct{}{}
	return true
}

// serverConn is one accepted connection. Its read loop owns reading; w
// batches the response writes.
type serverConn struct {
	s    *Server
	c    net.Conn
	w    *batchWriter
	slot chan struct{}
	// ctx ends when the connection does: nobody is left to take the
	// answers of its requests, so their handlers are cancelled.
	ctx context.Context

	mu       sync.Mutex
	inflight map[uint64]context.CancelFunc // by request ID
}

// MethodCancel is the method of a frame that cancels the request with the
// same ID on the same connection (see Client.Call). The server answers it
// with nothing; a server that predates it answers "no method", which the
// client ignores, since it no longer waits for that ID.
const MethodCancel = "peerrpc.cancel"

// start registers request f and returns its handler's context, which ends
// at the request's deadline, when the caller cancels it, or with the
// connection, and the function that releases it. IDs are unique on a
// connection; a client that reuses one can no longer cancel the older
// request.
func (sc *serverConn) start(f *Frame) (context.Context, func()) {
	timeout := time.Duration(f.Timeout)
	if timeout <= 0 || timeout > sc.s.cfg.MaxHandlerTime {
		timeout = sc.s.cfg.MaxHandlerTime
	}
	ctx, cancel := context.WithTimeout(sc.ctx, timeout)
	sc.mu.Lock()
	sc.inflight[f.ID] = cancel
	sc.mu.Unlock()
	return ctx, func() {
		sc.mu.Lock()
		delete(sc.inflight, f.ID)
		sc.mu.Unlock()
		cancel()
	}
}

// cancel ends the handler of request id, if it is still running.
func (sc *serverConn) cancel(id uint64) {
	sc.mu.Lock()
	cancel := sc.inflight[id]
	delete(sc.inflight, id)
	sc.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	ctx, cancelAll := context.WithCancel(s.ctx)
	sc := &serverConn{s: s, c: c, w: newBatchWriter(c), slot: make(chan struct{}, s.cfg.MaxInFlight),
		ctx: ctx, inflight: map[uint64]context.CancelFunc{}}
	var handlers sync.WaitGroup
	defer func() {
		cancelAll()
		c.Close()
		handlers.Wait()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	// Buffered: under load one read takes in many frames, not two reads
	// (header, body) per frame.
	br := bufio.NewReaderSize(c, 32<<10)
	for {
		f, err := s.readFrame(c, br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && s.ctx.Err() == nil {
				s.log.Debug("peer rpc connection dropped", "remote", c.RemoteAddr().String(), "err", err)
			}
			return
		}
		s.cfg.countBytes(false, headerSize+2+len(f.MAC)+len(f.signed))
		if f.Kind != KindRequest {
			s.log.Debug("peer rpc: response frame sent to a server; closing", "remote", c.RemoteAddr().String())
			return
		}
		if s.cfg.Auth != nil {
			if err := s.cfg.Auth.Verify(f, []byte(s.cfg.Self)); err != nil {
				s.log.Warn("peer rpc request refused", "remote", c.RemoteAddr().String(), "err", err)
				sc.reply(f, nil, WithCode(CodeUnauthenticated, err), false)
				return
			}
		}
		if f.Method == MethodCancel {
			sc.cancel(f.ID)
			continue
		}
		select {
		case sc.slot <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		// Registered here, in frame order, so a cancel that follows the
		// request finds it.
		hctx, done := sc.start(f)
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			defer func() { <-sc.slot }()
			body, err := sc.call(hctx, f)
			done()
			sc.reply(f, body, err, s.cfg.Auth != nil)
		}()
	}
}

// readFrame reads the next frame under the idle and frame timeouts and the
// server's read budget.
func (s *Server) readFrame(c net.Conn, r io.Reader) (*Frame, error) {
	c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
	n, err := readHeader(r, s.cfg.MaxFrameSize)
	if err != nil {
		return nil, err
	}
	if s.reading.Add(int64(n)) > s.cfg.ReadBudget {
		s.reading.Add(-int64(n))
		return nil, fmt.Errorf("peerrpc: %d bytes of frames already being read, budget %d; dropping a %d-byte frame", s.reading.Load(), s.cfg.ReadBudget, n)
	}
	defer s.reading.Add(-int64(n))
	c.SetReadDeadline(time.Now().Add(s.cfg.FrameTimeout))
	return readBody(r, n)
}

func (sc *serverConn) call(ctx context.Context, f *Frame) ([]byte, error) {
	sc.s.mu.Lock()
	h := sc.s.handlers[f.Method]
	sc.s.mu.Unlock()
	if h == nil {
		return nil, WithCode(CodeUnknownMethod, fmt.Errorf("no method %q on this peer (version mismatch?)", f.Method))
	}
	return h(ctx, f.Body)
}

// reply writes the response to req; sign says whether to seal it.
func (sc *serverConn) reply(req *Frame, body []byte, err error, sign bool) {
	resp := &Frame{Kind: KindResponse, ID: req.ID, Body: body}
	if err != nil {
		resp.Body = nil
		resp.Code = codeOf(err)
		resp.Error = err.Error()
		if len(resp.Error) > maxErrorLen {
			resp.Error = resp.Error[:maxErrorLen]
		}
	}
	var auth *Auth
	if sign {
		auth = sc.s.cfg.Auth
	}
	buf, encErr := AppendFrame(nil, resp, auth, req.Nonce)
	if encErr == nil && len(buf)-headerSize > sc.s.cfg.MaxFrameSize {
		encErr = fmt.Errorf("%w: response of %d bytes, limit %d", ErrFrameTooLarge, len(buf)-headerSize, sc.s.cfg.MaxFrameSize)
	}
	if encErr != nil {
		resp = &Frame{Kind: KindResponse, ID: req.ID, Code: CodeInternal, Error: encErr.Error()}
		if buf, encErr = AppendFrame(nil, resp, auth, req.Nonce); encErr != nil {
			sc.s.log.Error("peer rpc: cannot encode error response", "err", encErr)
			return
		}
	}
	if err := sc.w.write(buf, time.Now().Add(sc.s.cfg.DefaultTimeout)); err != nil {
		sc.c.Close()
		return
	}
	sc.s.cfg.countBytes(true, len(buf))
}

// Close stops accepting, closes every connection, cancels running handlers
// and waits for them. Safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel()
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
