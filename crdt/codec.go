package crdt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Every encoding this package produces is one format-version byte followed by one msgpack
// array whose first element is a kind tag naming the type, then the type's fields:
//
//	formatVersion, [kind, field1, field2, ...]
//
// A decoder refuses another format version, another kind, trailing bytes, and any length that
// the remaining input could not hold. Lengths are read and checked before anything is
// allocated, so hostile bytes cannot make a decoder allocate far beyond the input size: what it
// allocates is bounded by a small constant times len(input) (the unpacked form of a value is
// larger than its packed msgpack form, by at most about 16× for counts).

// formatVersion is the first byte of every encoding. Decoders refuse other versions.
const formatVersion = 1

// Kind tags, the first element of the top-level array.
const (
	kindGCounter      = 1
	kindPNCounter     = 2
	kindState         = 3
	kindCursor        = 4
	kindDigest        = 5
	kindReplicaCounts = 6
)

var kindNames = map[uint64]string{
	kindGCounter: "GCounter", kindPNCounter: "PNCounter", kindState: "State",
	kindCursor: "Cursor", kindDigest: "Digest", kindReplicaCounts: "ReplicaCounts",
}

// encoder writes one encoding, appending to a caller's buffer.
type encoder struct {
	buf bytes.Buffer
	e   *msgpack.Encoder
	err error // the first write error; later writes are skipped
}

// newEncoder starts an encoding of kind with the given number of fields after the kind tag.
func newEncoder(dst []byte, kind uint64, fields int) *encoder {
	enc := &encoder{buf: *bytes.NewBuffer(dst)}
	enc.buf.WriteByte(formatVersion)
	enc.e = msgpack.NewEncoder(&enc.buf)
	enc.arrayLen(fields + 1)
	enc.uint(kind)
	return enc
}

func (enc *encoder) keep(err error) {
	if enc.err == nil && err != nil {
		enc.err = err
	}
}

func (enc *encoder) arrayLen(n int) { enc.keep(enc.e.EncodeArrayLen(n)) }
func (enc *encoder) uint(x uint64)  { enc.keep(enc.e.EncodeUint(x)) }
func (enc *encoder) str(s string)   { enc.keep(enc.e.EncodeString(s)) }

// words writes xs as one msgpack bin of little-endian uint64s: denser than an array of
// uints for hashes, which are random and would take 9 bytes each.
func (enc *encoder) words(xs []uint64) {
	enc.keep(enc.e.EncodeBytesLen(8 * len(xs)))
	var b [8]byte
	for _, x := range xs {
		binary.LittleEndian.PutUint64(b[:], x)
		enc.buf.Write(b[:])
	}
}

func (enc *encoder) replica(r ReplicaID) {
	enc.arrayLen(2)
	enc.str(r.Node)
	enc.uint(r.Incarnation)
}

func (enc *encoder) finish() ([]byte, error) {
	if enc.err != nil {
		return nil, fmt.Errorf("crdt: encoding: %w", enc.err)
	}
	return enc.buf.Bytes(), nil
}

// decoder reads one encoding. Every method checks what it reads against the bytes left.
type decoder struct {
	r   bytes.Reader
	d   *msgpack.Decoder
	buf []byte
}

// newDecoder checks the version byte, the top-level array and the kind tag, and returns the
// decoder positioned at the first field.
func newDecoder(b []byte, kind uint64, fields int) (*decoder, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrBadEncoding)
	}
	if b[0] != formatVersion {
		return nil, fmt.Errorf("%w: format version %d, this build reads version %d", ErrBadEncoding, b[0], formatVersion)
	}
	dec := decoderPool.Get().(*decoder)
	dec.r.Reset(b[1:])
	dec.d.Reset(&dec.r)
	n, err := dec.arrayLen(1)
	if err != nil {
		dec.release()
		return nil, err
	}
	k, err := dec.uint()
	if err != nil {
		dec.release()
		return nil, err
	}
	if k != kind {
		dec.release()
		name, ok := kindNames[k]
		if !ok {
			name = fmt.Sprintf("unknown kind %d", k)
		}
		return nil, fmt.Errorf("%w: input is a %s, not a %s", ErrBadEncoding, name, kindNames[kind])
	}
	if n != fields+1 {
		dec.release()
		return nil, fmt.Errorf("%w: %s has %d fields, want %d", ErrBadEncoding, kindNames[kind], n-1, fields)
	}
	return dec, nil
}

// decoderPool keeps decoders (each with its msgpack decoder) for reuse: a storage merge
// decodes every record of a key, and a new msgpack decoder each time was a tenth of it.
var decoderPool = sync.Pool{New: func() any {
	dec := &decoder{}
	dec.d = msgpack.NewDecoder(&dec.r)
	return dec
}}

// release returns dec to the pool; the caller must not use it after.
func (dec *decoder) release() {
	dec.r.Reset(nil)
	if cap(dec.buf) > 64<<10 {
		dec.buf = nil
	}
	decoderPool.Put(dec)
}

func (dec *decoder) fail(what string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrBadEncoding, what, err)
}

// arrayLen reads an array header and checks that the remaining input can hold that many
// elements of at least minBytes bytes each.
func (dec *decoder) arrayLen(minBytes int) (int, error) {
	n, err := dec.d.DecodeArrayLen()
	if err != nil {
		return 0, dec.fail("reading an array length", err)
	}
	if n < 0 {
		return 0, fmt.Errorf("%w: nil where an array belongs", ErrBadEncoding)
	}
	if n > dec.r.Len()/minBytes {
		return 0, fmt.Errorf("%w: array of %d elements does not fit in the %d bytes left", ErrBadEncoding, n, dec.r.Len())
	}
	return n, nil
}

// uint reads a non-negative integer encoded as a positive fixint or uint8..uint64. It reads
// the bytes itself rather than through msgpack.Decoder, which reads from the same
// bytes.Reader without buffering: integers are most of a State, and this halves decoding.
func (dec *decoder) uint() (uint64, error) {
	c, err := dec.r.ReadByte()
	if err != nil {
		return 0, fmt.Errorf("%w: reading an integer: %v", ErrBadEncoding, err)
	}
	if c <= msgpcode.PosFixedNumHigh {
		return uint64(c), nil
	}
	var n int
	switch c {
	case msgpcode.Uint8:
		n = 1
	case msgpcode.Uint16:
		n = 2
	case msgpcode.Uint32:
		n = 4
	case msgpcode.Uint64:
		n = 8
	default:
		return 0, fmt.Errorf("%w: code %#x where an unsigned integer belongs", ErrBadEncoding, c)
	}
	var x uint64
	for range n {
		b, err := dec.r.ReadByte()
		if err != nil {
			return 0, fmt.Errorf("%w: reading an integer: %v", ErrBadEncoding, err)
		}
		x = x<<8 | uint64(b)
	}
	return x, nil
}

// uint32 reads an unsigned integer that must be at most math.MaxUint32.
func (dec *decoder) uint32() (uint32, error) {
	x, err := dec.uint()
	if err != nil {
		return 0, err
	}
	if x > math.MaxUint32 {
		return 0, fmt.Errorf("%w: %d does not fit in 32 bits", ErrBadEncoding, x)
	}
	return uint32(x), nil
}

// bytesLen reads the header of a str (wantStr) or bin value and checks its length against
// maxLen and the bytes left.
func (dec *decoder) bytesLen(wantStr bool, maxLen int) (int, error) {
	c, err := dec.d.PeekCode()
	if err != nil {
		return 0, dec.fail("reading a length", err)
	}
	isStr := msgpcode.IsFixedString(c) || c == msgpcode.Str8 || c == msgpcode.Str16 || c == msgpcode.Str32
	isBin := c == msgpcode.Bin8 || c == msgpcode.Bin16 || c == msgpcode.Bin32
	if wantStr && !isStr || !wantStr && !isBin {
		return 0, fmt.Errorf("%w: code %#x where a string or bytes belong", ErrBadEncoding, c)
	}
	n, err := dec.d.DecodeBytesLen()
	if err != nil {
		return 0, dec.fail("reading a length", err)
	}
	if n > maxLen {
		return 0, fmt.Errorf("%w: length %d is over the limit of %d", ErrBadEncoding, n, maxLen)
	}
	if n > dec.r.Len() {
		return 0, fmt.Errorf("%w: length %d does not fit in the %d bytes left", ErrBadEncoding, n, dec.r.Len())
	}
	return n, nil
}

// str reads a string of minLen to maxLen bytes.
func (dec *decoder) str(minLen, maxLen int) (string, error) {
	n, err := dec.bytesLen(true, maxLen)
	if err != nil {
		return "", err
	}
	if n < minLen {
		return "", fmt.Errorf("%w: string of %d bytes is shorter than %d", ErrBadEncoding, n, minLen)
	}
	if cap(dec.buf) < n {
		dec.buf = make([]byte, n)
	}
	b := dec.buf[:n]
	if err := dec.d.ReadFull(b); err != nil {
		return "", dec.fail("reading a string", err)
	}
	return string(b), nil
}

// words reads a bin written by encoder.words, appending the words to dst.
func (dec *decoder) words(dst []uint64) ([]uint64, error) {
	n, err := dec.bytesLen(false, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	if n%8 != 0 {
		return nil, fmt.Errorf("%w: %d bytes of hashes is not a whole number of words", ErrBadEncoding, n)
	}
	var b [8]byte
	for range n / 8 {
		if err := dec.d.ReadFull(b[:]); err != nil {
			return nil, dec.fail("reading hashes", err)
		}
		dst = append(dst, binary.LittleEndian.Uint64(b[:]))
	}
	return dst, nil
}

func (dec *decoder) replica() (ReplicaID, error) {
	if n, err := dec.arrayLen(1); err != nil {
		return ReplicaID{}, err
	} else if n != 2 {
		return ReplicaID{}, fmt.Errorf("%w: replica id has %d fields, want 2", ErrBadEncoding, n)
	}
	node, err := dec.str(1, MaxNodeLen)
	if err != nil {
		return ReplicaID{}, err
	}
	inc, err := dec.uint()
	if err != nil {
		return ReplicaID{}, err
	}
	return ReplicaID{Node: node, Incarnation: inc}, nil
}

// end checks that the whole input was read.
func (dec *decoder) end() error {
	if n := dec.r.Len(); n != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrBadEncoding, n)
	}
	return nil
}
