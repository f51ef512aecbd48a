package peerrpc

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// refEncodeFields and refDecodeFields are the frame fields' coders written
// with msgpack/v5's Encoder and Decoder, as they were before the hand-written
// ones: the reference those must agree with.
func refEncodeFields(f *Frame) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
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
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

func refDecodeFields(b []byte) (*Frame, error) {
	rd := bytes.NewReader(b)
	dec := msgpack.NewDecoder(rd)
	f := &Frame{}
	n, err := dec.DecodeArrayLen()
	if err != nil || n != frameFields {
		return nil, fmt.Errorf("fields: %v %d", err, n)
	}
	kind, err := dec.DecodeUint8()
	f.Kind = Kind(kind)
	if err != nil || (f.Kind != KindRequest && f.Kind != KindResponse) {
		return nil, fmt.Errorf("kind: %v %d", err, kind)
	}
	bounded := func(limit int) ([]byte, error) {
		n, err := dec.DecodeBytesLen()
		if err != nil || n < 0 {
			return nil, err
		}
		if n > limit {
			return nil, fmt.Errorf("%d > %d", n, limit)
		}
		v := make([]byte, n)
		return v, dec.ReadFull(v)
	}
	str := func(limit int) (string, error) { v, err := bounded(limit); return string(v), err }
	var errs [8]error
	f.ID, errs[0] = dec.DecodeUint64()
	f.Method, errs[1] = str(maxMethodLen)
	f.Timeout, errs[2] = dec.DecodeInt64()
	f.Code, errs[3] = str(maxMethodLen)
	f.Error, errs[4] = str(maxErrorLen)
	f.Body, errs[5] = bounded(len(b))
	f.Time, errs[6] = dec.DecodeInt64()
	f.Nonce, errs[7] = bounded(nonceSize)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if rd.Len() != 0 {
		return nil, fmt.Errorf("trailing bytes")
	}
	return f, nil
}

func randFrame(r *rand.Rand) *Frame {
	bs := func(max int) []byte {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			return []byte{}
		}
		n := r.IntN(max + 1)
		if r.IntN(8) == 0 {
			n = []int{31, 32, 255, 256, 65535, 65536}[r.IntN(6)] % (max + 1)
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	num := func() int64 {
		return []int64{0, 1, -1, 127, 128, -33, math.MinInt64, math.MaxInt64, int64(r.Uint64())}[r.IntN(9)]
	}
	return &Frame{Kind: Kind(1 + r.IntN(2)), ID: r.Uint64() >> r.IntN(64), Method: string(bs(maxMethodLen)),
		Timeout: num(), Code: string(bs(maxMethodLen)), Error: string(bs(maxErrorLen)), Body: bs(70000),
		Time: num(), Nonce: bs(nonceSize)}
}

// TestFrameCodecMatchesMsgpack checks that frames are written byte for byte
// as msgpack/v5's Encoder writes them and read back to the same fields.
func TestFrameCodecMatchesMsgpack(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		f := randFrame(r)
		want, err := refEncodeFields(f)
		if err != nil {
			t.Fatal(err)
		}
		wire, err := AppendFrame(nil, f, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := wire[headerSize+2:]; !bytes.Equal(got, want) {
			t.Fatalf("case %d: hand-written %x\nmsgpack      %x", i, got, want)
		}
		back, err := ReadFrame(bytes.NewReader(wire), 1<<20)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		ref, err := refDecodeFields(want)
		if err != nil {
			t.Fatalf("case %d: reference decoder: %v", i, err)
		}
		if !sameFields(back, ref) {
			t.Fatalf("case %d: read %+v, reference %+v", i, back, ref)
		}
	}
}

func sameFields(a, b *Frame) bool {
	a2, b2 := *a, *b
	a2.signed, b2.signed, a2.MAC, b2.MAC = nil, nil, nil, nil
	return reflect.DeepEqual(a2, b2)
}

// FuzzFrameFields checks the hand-written field reader against the
// msgpack/v5 one on arbitrary bytes: whatever it accepts, the reference
// accepts with the same fields, and it accepts everything the reference
// accepts in the integer and string forms our encoder writes.
func FuzzFrameFields(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 6 {
		b, _ := refEncodeFields(randFrame(r))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got Frame
		err := got.decodeFields(b)
		ref, refErr := refDecodeFields(b)
		if err == nil {
			if refErr != nil {
				t.Fatalf("%x: accepted, reference says %v", b, refErr)
			}
			if !sameFields(&got, ref) {
				t.Fatalf("%x: read %+v, reference %+v", b, got, *ref)
			}
			return
		}
		if refErr == nil {
			// Refusing what msgpack/v5 reads is fine only where it is
			// looser than a sane frame: wrapped or truncated integers.
			if enc, _ := refEncodeFields(ref); bytes.Equal(enc, b) {
				t.Fatalf("%x: refused a canonical frame: %v", b, err)
			}
		}
	})
}
