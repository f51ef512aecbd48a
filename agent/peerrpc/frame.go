package peerrpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
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

// encodeFields appends the msgpack array of the frame's fields to buf.
func (f *Frame) encodeFields(buf *bytes.Buffer) error {
	enc := msgpack.NewEncoder(buf)
	for _, err := range []error{
		enc.EncodeArrayLen(frameFields),
		enc.EncodeUint8(uint8(f.Kind)),
		enc.EncodeUint64(f.ID),
		enc.EncodeString(f.Method),
		enc.EncodeInt64(f.Timeout),
		enc.EncodeString(f.Code),
		enc.EncodeString(f.Error),
		enc.EncodeBytes(f.Body),
		enc.EncodeInt64(f.Time),
		enc.EncodeBytes(f.Nonce),
	} {
		if err != nil {
			return fmt.Errorf("peerrpc: encode frame: %w", err)
		}
	}
	return nil
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
	var fields bytes.Buffer
	if err := f.encodeFields(&fields); err != nil {
		return dst, err
	}
	f.MAC = nil
	if auth != nil {
		f.MAC = auth.mac(fields.Bytes(), bind)
	}
	n := 2 + len(f.MAC) + fields.Len()
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, FrameVersion, byte(len(f.MAC)))
	dst = append(dst, f.MAC...)
	return append(dst, fields.Bytes()...), nil
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
	var buf bytes.Buffer
	buf.Grow(min(n, 64<<10))
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return DecodeFrame(buf.Bytes())
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

func (f *Frame) decodeFields(b []byte) error {
	rd := bytes.NewReader(b)
	dec := msgpack.NewDecoder(rd)
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	if n != frameFields {
		return fmt.Errorf("%w: %d fields, want %d", ErrBadFrame, n, frameFields)
	}
	kind, err := dec.DecodeUint8()
	if err != nil {
		return fmt.Errorf("%w: kind: %v", ErrBadFrame, err)
	}
	f.Kind = Kind(kind)
	if f.Kind != KindRequest && f.Kind != KindResponse {
		return fmt.Errorf("%w: unknown kind %d", ErrBadFrame, kind)
	}
	if f.ID, err = dec.DecodeUint64(); err != nil {
		return fmt.Errorf("%w: id: %v", ErrBadFrame, err)
	}
	if f.Method, err = decodeBoundedString(dec, maxMethodLen, len(b)); err != nil {
		return fmt.Errorf("%w: method: %v", ErrBadFrame, err)
	}
	if f.Timeout, err = dec.DecodeInt64(); err != nil {
		return fmt.Errorf("%w: timeout: %v", ErrBadFrame, err)
	}
	if f.Code, err = decodeBoundedString(dec, maxMethodLen, len(b)); err != nil {
		return fmt.Errorf("%w: code: %v", ErrBadFrame, err)
	}
	if f.Error, err = decodeBoundedString(dec, maxErrorLen, len(b)); err != nil {
		return fmt.Errorf("%w: error: %v", ErrBadFrame, err)
	}
	if f.Body, err = decodeBoundedBytes(dec, len(b)); err != nil {
		return fmt.Errorf("%w: body: %v", ErrBadFrame, err)
	}
	if f.Time, err = dec.DecodeInt64(); err != nil {
		return fmt.Errorf("%w: time: %v", ErrBadFrame, err)
	}
	if f.Nonce, err = decodeBoundedBytes(dec, nonceSize); err != nil {
		return fmt.Errorf("%w: nonce: %v", ErrBadFrame, err)
	}
	if rd.Len() != 0 {
		return fmt.Errorf("%w: trailing bytes", ErrBadFrame)
	}
	return nil
}

// decodeBoundedBytes reads a msgpack bin or str of at most limit bytes,
// checking the declared length before allocating.
func decodeBoundedBytes(dec *msgpack.Decoder, limit int) ([]byte, error) {
	n, err := dec.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, nil
	}
	if n > limit {
		return nil, fmt.Errorf("%d bytes declared, limit %d", n, limit)
	}
	b := make([]byte, n)
	if err := dec.ReadFull(b); err != nil {
		return nil, err
	}
	return b, nil
}

func decodeBoundedString(dec *msgpack.Decoder, limit, remaining int) (string, error) {
	b, err := decodeBoundedBytes(dec, min(limit, remaining))
	return string(b), err
}
