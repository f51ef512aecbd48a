package peerrpc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// maxNesting bounds how deeply arrays and maps may nest in a message body.
const maxNesting = 32

// ErrBadBody is returned (wrapped) for a message body that is not sane
// msgpack.
var ErrBadBody = errors.New("peerrpc: malformed message body")

// CheckMsgpack walks b as one msgpack value without allocating and refuses it
// when it is truncated, has trailing bytes, nests deeper than maxNesting, or
// declares an array or map with more elements than bytes remain (every
// element takes at least one byte). msgpack/v5 preallocates slices from the
// declared length, so running this first keeps a decoder's allocations in
// proportion to the input, whatever a hostile peer sends.
func CheckMsgpack(b []byte) error {
	rest, err := skipValue(b, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrBadBody, len(rest))
	}
	return nil
}

var errTruncated = errors.New("truncated")

// skipValue returns b after the msgpack value at its start.
func skipValue(b []byte, depth int) ([]byte, error) {
	if len(b) == 0 {
		return nil, errTruncated
	}
	c := b[0]
	b = b[1:]
	switch {
	case c <= 0x7f || c >= 0xe0: // positive and negative fixint
		return b, nil
	case c >= 0x80 && c <= 0x8f: // fixmap
		return skipElems(b, 2*int(c&0x0f), depth)
	case c >= 0x90 && c <= 0x9f: // fixarray
		return skipElems(b, int(c&0x0f), depth)
	case c >= 0xa0 && c <= 0xbf: // fixstr
		return skipBytes(b, int(c&0x1f))
	}
	switch c {
	case 0xc0, 0xc2, 0xc3: // nil, false, true
		return b, nil
	case 0xc4, 0xd9: // bin8, str8
		return skipSized(b, 1, 0)
	case 0xc5, 0xda: // bin16, str16
		return skipSized(b, 2, 0)
	case 0xc6, 0xdb: // bin32, str32
		return skipSized(b, 4, 0)
	case 0xc7: // ext8
		return skipSized(b, 1, 1)
	case 0xc8: // ext16
		return skipSized(b, 2, 1)
	case 0xc9: // ext32
		return skipSized(b, 4, 1)
	case 0xca: // float32
		return skipBytes(b, 4)
	case 0xcb: // float64
		return skipBytes(b, 8)
	case 0xcc, 0xd0: // uint8, int8
		return skipBytes(b, 1)
	case 0xcd, 0xd1:
		return skipBytes(b, 2)
	case 0xce, 0xd2:
		return skipBytes(b, 4)
	case 0xcf, 0xd3:
		return skipBytes(b, 8)
	case 0xd4: // fixext1..16: type byte + data
		return skipBytes(b, 2)
	case 0xd5:
		return skipBytes(b, 3)
	case 0xd6:
		return skipBytes(b, 5)
	case 0xd7:
		return skipBytes(b, 9)
	case 0xd8:
		return skipBytes(b, 17)
	case 0xdc: // array16
		n, rest, err := readLen(b, 2)
		if err != nil {
			return nil, err
		}
		return skipElems(rest, n, depth)
	case 0xdd: // array32
		n, rest, err := readLen(b, 4)
		if err != nil {
			return nil, err
		}
		return skipElems(rest, n, depth)
	case 0xde: // map16
		n, rest, err := readLen(b, 2)
		if err != nil {
			return nil, err
		}
		return skipElems(rest, 2*n, depth)
	case 0xdf: // map32
		n, rest, err := readLen(b, 4)
		if err != nil {
			return nil, err
		}
		return skipElems(rest, 2*n, depth)
	}
	return nil, fmt.Errorf("invalid code 0x%02x", c)
}

func readLen(b []byte, size int) (int, []byte, error) {
	if len(b) < size {
		return 0, nil, errTruncated
	}
	switch size {
	case 1:
		return int(b[0]), b[1:], nil
	case 2:
		return int(binary.BigEndian.Uint16(b)), b[2:], nil
	default:
		return int(binary.BigEndian.Uint32(b)), b[4:], nil
	}
}

// skipSized skips a length-prefixed value with extra type bytes after the
// length (ext types).
func skipSized(b []byte, lenSize, extra int) ([]byte, error) {
	n, rest, err := readLen(b, lenSize)
	if err != nil {
		return nil, err
	}
	return skipBytes(rest, n+extra)
}

func skipBytes(b []byte, n int) ([]byte, error) {
	if n < 0 || n > len(b) {
		return nil, errTruncated
	}
	return b[n:], nil
}

func skipElems(b []byte, n, depth int) ([]byte, error) {
	if depth >= maxNesting {
		return nil, fmt.Errorf("nested deeper than %d", maxNesting)
	}
	if n > len(b) {
		return nil, fmt.Errorf("%d elements declared, only %d bytes left", n, len(b))
	}
	var err error
	for range n {
		if b, err = skipValue(b, depth+1); err != nil {
			return nil, err
		}
	}
	return b, nil
}
