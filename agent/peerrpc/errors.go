package peerrpc

import (
	"context"
	"errors"
	"fmt"
)

// Errors returned by Client.Call (wrapped; match with errors.Is).
var (
	// ErrUnreachable means no connection to the peer could be made or kept:
	// nobody listens there, the dial timed out, or the connection broke.
	ErrUnreachable = errors.New("peerrpc: peer unreachable")
	// ErrTimeout means the call's deadline passed before the answer came.
	ErrTimeout = errors.New("peerrpc: call timed out")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("peerrpc: closed")
)

// Codes a handler's error can carry to the caller (see Coder).
const (
	CodeInternal        = "internal"
	CodeBadRequest      = "bad_request"
	CodeUnknownMethod   = "unknown_method"
	CodeUnauthenticated = "unauthenticated"
	CodeUnavailable     = "unavailable"
	// CodeTimeout: the handler ran out of the caller's deadline. The client
	// reports it as ErrTimeout.
	CodeTimeout = "timeout"
)

// Coder is implemented by handler errors that choose the code the caller sees.
type Coder interface {
	RPCCode() string
}

// RemoteError is a handler's failure as the caller receives it.
type RemoteError struct {
	Method  string
	Code    string
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("peer rpc %s: %s (%s)", e.Method, e.Message, e.Code)
}

// RPCCode returns the code, so a RemoteError passes through a relay intact.
func (e *RemoteError) RPCCode() string { return e.Code }

// codeOf picks the wire code for a handler error.
func codeOf(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeTimeout
	}
	var c Coder
	if errors.As(err, &c) {
		return c.RPCCode()
	}
	return CodeInternal
}

// codedError is an error with an explicit code.
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string   { return e.err.Error() }
func (e *codedError) Unwrap() error   { return e.err }
func (e *codedError) RPCCode() string { return e.code }

// WithCode wraps err so that callers see it under code.
func WithCode(code string, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}
