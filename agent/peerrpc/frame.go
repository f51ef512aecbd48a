package peerrpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// Wire format of one frame:
//
//	length  uint32, big endian: bytes that follow (version through fields)
//	version uint8: FrameVersion
//	macLen  uint8: 0 (no cluster key) or 32 (HMAC-SHA256)
//	mac     [macLen]byte: HMAC over version and fields (see auth.go)
//	fields  a msgpack array of exactly frameFields elements, in Frame order
//
// The length is checked against the reader's limit before anything is
// allocated, and every field is read with its type checked, so hostile bytes
// give an error and never a panic or a large allocation.

// FrameVersion is the format version byte every frame starts with.
const FrameVersion = 1

const (
	frameFields  = 9
	macSize      = 32
	nonceSize    = 16
	headerSize   = 4
	maxMethodLen = 128
	maxErrorLen  = 4096
)

// Kind tells a request from a response.
type Kind uint8

const (
	// KindRequest is a call from a client.
	KindRequest Kind = 1
	// KindResponse answers the request with the same ID.
	KindResponse Kind = 2
)

// Frame is one message on a peer RPC connection.
type Frame struct {
	Kind Kind
	// ID matches a response to its request; unique per connection.
	ID uint64
	// Method names the handler (requests only).
	Method string
	// Timeout is the caller's remaining budget in nanoseconds (requests only);
	// relative, so it means the same on peers whose clocks disagree.
	Timeout int64
	// Code and Error carry a handler's failure (responses only); Error is
	// empty on success.
	Code  string
	Error string
	// Body is the msgpack-encoded request or response.
	Body []byte
	// Time (unix nanoseconds by the sender's clock) and Nonce make a signed
	// frame fresh and unique, so a recorded frame cannot be replayed.
	Time  int64
	Nonce []byte
	// MAC is set by AppendFrame and checked by Auth.Verify; it is not one
	// of the fields.
	MAC []byte

	// signed holds the received field bytes the MAC covers.
	signed []byte
}

// Errors returned while reading frames.
var (
	// ErrFrameTooLarge is returned when a frame's declared length exceeds the
	// reader's limit; the connection must be closed, it cannot be resynced.
	ErrFrameTooLarge = errors.New("peerrpc: frame too large")
	// ErrBadFrame is returned for bytes that are not a valid frame.
	ErrBadFrame = errors.New("peerrpc: malformed frame")
)

// appendFields appends the msgpack array of the frame's fields to dst,
// written by hand in the forms msgpack/v5's Encoder picks for them (uint8 in
// 2 bytes, uint64 and int64 in 9, nil for empty bytes): a frame is encoded
// and decoded for every call, and the Encoder and Decoder cost 20 allocations
// and 1.3-1.9 µs a round trip (BenchmarkFrameRoundTrip).
func (f *Frame) appendFields(dst []byte) []byte {
	dst = append(dst, 0x90|frameFields)
	dst = append(dst, 0xcc, byte(f.Kind))
	dst = binary.BigEndian.AppendUint64(append(dst, 0xcf), f.ID)
	dst = appendString(dst, f.Method)
	dst = binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(f.Timeout))
	dst = appendString(dst, f.Code)
	dst = appendString(dst, f.Error)
	dst = appendBin(dst, f.Body)
	dst = binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(f.Time))
	return appendBin(dst, f.Nonce)
}

// appendString appends s as a msgpack str in its shortest form.
func appendString(dst []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
	}
	return append(dst, s...)
}

// appendBin appends b as a msgpack bin in its shortest form, or nil if b is.
func appendBin(dst []byte, b []byte) []byte {
	switch n := len(b); {
	case b == nil:
		return append(dst, 0xc0)
	case n <= math.MaxUint8:
		dst = append(dst, 0xc4, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xc5), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xc6), uint32(n))
	}
	return append(dst, b...)
}

// AppendFrame appends the complete wire form of f (length prefix included)
// to dst. With a non-nil auth the frame is sealed first: its Time, Nonce and
// MAC are set, the MAC also covering bind (see Auth).
func AppendFrame(dst []byte, f *Frame, auth *Auth, bind []byte) ([]byte, error) {
	if auth != nil {
		if err := auth.stamp(f); err != nil {
			return dst, err
		}
	}
	if len(f.Body) > math.MaxUint32 || len(f.Method) > math.MaxUint32 || len(f.Error) > math.MaxUint32 {
		return dst, fmt.Errorf("peerrpc: encode frame: a field is over 4 GiB")
	}
	macLen := 0
	if auth != nil {
		macLen = macSize
	}
	// Room for the header, the MAC and the fields (at most 5 bytes of type
	// and length a value, 9 for numbers), so the frame is built in place.
	dst = slices.Grow(dst, headerSize+2+macLen+1+2+9+9+9+5*5+
		len(f.Method)+len(f.Code)+len(f.Error)+len(f.Body)+len(f.Nonce))
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, FrameVersion, byte(macLen))
	dst = append(dst, make([]byte, macLen)...)
	fields := len(dst)
	dst = f.appendFields(dst)
	f.MAC = nil
	if auth != nil {
		f.MAC = auth.mac(dst[fields:], bind)
		copy(dst[fields-macLen:fields], f.MAC)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-headerSize))
	return dst, nil
}

// ReadFrame reads one frame from r, refusing any frame whose declared length
// exceeds maxSize. Memory grows with the bytes that actually arrive, not with
// the declared length.
func ReadFrame(r io.Reader, maxSize int) (*Frame, error) {
	n, err := readHeader(r, maxSize)
	if err != nil {
		return nil, err
	}
	return readBody(r, n)
}

func readHeader(r io.Reader, maxSize int) (int, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if int64(n) > int64(maxSize) {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, maxSize)
	}
	return int(n), nil
}

func readBody(r io.Reader, n int) (*Frame, error) {
	// Read in steps of at most 64 KiB, so memory follows the bytes that
	// arrive and not a hostile length.
	b := make([]byte, 0, min(n, 64<<10))
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n-len(b), len(b)))
		}
		m, err := io.ReadAtLeast(r, b[len(b):min(n, cap(b))], min(n, cap(b))-len(b))
		b = b[:len(b)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return DecodeFrame(b)
}

// DecodeFrame decodes a frame body (everything after the length prefix).
// The returned frame's MAC aliases b.
func DecodeFrame(b []byte) (*Frame, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrBadFrame, len(b))
	}
	if b[0] != FrameVersion {
		return nil, fmt.Errorf("%w: format version %d, this peer speaks %d (upgrade the older peer)", ErrBadFrame, b[0], FrameVersion)
	}
	macLen := int(b[1])
	if macLen != 0 && macLen != macSize {
		return nil, fmt.Errorf("%w: mac length %d", ErrBadFrame, macLen)
	}
	if len(b) < 2+macLen {
		return nil, fmt.Errorf("%w: truncated mac", ErrBadFrame)
	}
	f := &Frame{signed: b[2+macLen:]}
	if macLen > 0 {
		f.MAC = b[2 : 2+macLen]
	}
	if err := f.decodeFields(f.signed); err != nil {
		return nil, err
	}
	return f, nil
}

// decodeFields reads the fields array. Body and Nonce alias b.
func (f *Frame) decodeFields(b []byte) error {
	r := fieldReader{b: b}
	if n := r.arrayLen(); r.err == nil && n != frameFields {
		return fmt.Errorf("%w: %d fields, want %d", ErrBadFrame, n, frameFields)
	}
	kind := r.uint("kind", math.MaxUint8)
	f.Kind = Kind(kind)
	if r.err == nil && f.Kind != KindRequest && f.Kind != KindResponse {
		return fmt.Errorf("%w: unknown kind %d", ErrBadFrame, kind)
	}
	f.ID = r.uint("id", math.MaxUint64)
	f.Method = string(r.bytes("method", maxMethodLen))
	f.Timeout = r.int("timeout")
	f.Code = string(r.bytes("code", maxMethodLen))
	f.Error = string(r.bytes("error", maxErrorLen))
	f.Body = r.bytes("body", len(b))
	f.Time = r.int("time")
	f.Nonce = r.bytes("nonce", nonceSize)
	if r.err == nil && len(r.b) != 0 {
		return fmt.Errorf("%w: trailing bytes", ErrBadFrame)
	}
	return r.err
}

// fieldReader reads msgpack values from the front of b, keeping the first
// error (wrapping ErrBadFrame and naming the field); after one, every read
// returns a zero value.
type fieldReader struct {
	b   []byte
	err error
}

func (r *fieldReader) fail(field, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s: %s", ErrBadFrame, field, fmt.Sprintf(format, args...))
	}
}

// take returns the next n bytes, or nil after recording an error.
func (r *fieldReader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.fail(field, "truncated")
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// code returns the next type byte, or 0 (and an error) at the end.
func (r *fieldReader) code(field string) byte {
	c := r.take(field, 1)
	if c == nil {
		return 0
	}
	return c[0]
}

// sized reads a big-endian length or number of size bytes.
func (r *fieldReader) sized(field string, size int) uint64 {
	var v uint64
	for _, c := range r.take(field, size) {
		v = v<<8 | uint64(c)
	}
	return v
}

func (r *fieldReader) arrayLen() int {
	c := r.code("fields")
	switch {
	case r.err != nil:
		return 0
	case c&0xf0 == 0x90:
		return int(c & 0x0f)
	case c == 0xdc:
		return int(r.sized("fields", 2))
	case c == 0xdd:
		return int(r.sized("fields", 4))
	}
	r.fail("fields", "not an array (code %#x)", c)
	return 0
}

// number reads any msgpack integer as a sign and magnitude.
func (r *fieldReader) number(field string) (neg bool, mag uint64) {
	c := r.code(field)
	switch {
	case r.err != nil:
		return false, 0
	case c <= 0x7f:
		return false, uint64(c)
	case c >= 0xe0:
		return true, uint64(-int64(int8(c)))
	case c >= 0xcc && c <= 0xcf: // uint8 to uint64
		return false, r.sized(field, 1<<(c-0xcc))
	case c >= 0xd0 && c <= 0xd3: // int8 to int64
		size := 1 << (c - 0xd0)
		v := r.sized(field, size)
		shift := 64 - 8*size
		s := int64(v<<shift) >> shift // sign-extend
		if s < 0 {
			return true, uint64(-s)
		}
		return false, uint64(s)
	}
	r.fail(field, "not an integer (code %#x)", c)
	return false, 0
}

// uint reads a non-negative integer of at most limit.
func (r *fieldReader) uint(field string, limit uint64) uint64 {
	neg, v := r.number(field)
	if neg && v != 0 || v > limit {
		r.fail(field, "out of range")
		return 0
	}
	return v
}

// int reads an integer that fits an int64.
func (r *fieldReader) int(field string) int64 {
	neg, v := r.number(field)
	switch {
	case !neg && v <= math.MaxInt64:
		return int64(v)
	case neg && v <= 1<<63:
		return -int64(v) // 1<<63 wraps to MinInt64, which is right
	}
	r.fail(field, "out of range")
	return 0
}

// bytes reads a msgpack bin or str of at most limit bytes, or nil; the
// result aliases the frame.
func (r *fieldReader) bytes(field string, limit int) []byte {
	c := r.code(field)
	var n uint64
	switch {
	case r.err != nil:
		return nil
	case c == 0xc0:
		return nil
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c == 0xc4 || c == 0xd9:
		n = r.sized(field, 1)
	case c == 0xc5 || c == 0xda:
		n = r.sized(field, 2)
	case c == 0xc6 || c == 0xdb:
		n = r.sized(field, 4)
	default:
		r.fail(field, "not bytes or a string (code %#x)", c)
		return nil
	}
	if r.err == nil && n > uint64(limit) {
		r.fail(field, "%d bytes declared, limit %d", n, limit)
		return nil
	}
	return r.take(field, int(n))
}
