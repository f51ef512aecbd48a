package agent

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Hand-written msgpack coders for the lock requests and answers that every
// forwarded acquire, renew and release carries. They write the same map that
// msgpack/v5's reflection writes for the struct tags (same keys, same order,
// zero fields left out, 64-bit integers in 9 bytes), so peers built with
// either read each other, and read fields with the same Decoder calls. Why:
// reflection spent about a fifth of a lock owner's CPU on these two types in
// BenchmarkLockPairs (struct field lookups in a sync.Map, isEmptyValue through
// reflect.Value). TestLockOpCodecMatchesReflection and FuzzLockOpCodec hold
// the two in step.

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r lockOpRequest) EncodeMsgpack(enc *msgpack.Encoder) error {
	n := 2 + count(r.Holder != "", r.TTL != 0, r.Wait != 0, r.Lease != "", r.Fallback, r.Skip != "")
	w := fieldWriter{enc: enc}
	w.mapLen(n)
	w.str("op", r.Op, true)
	w.str("k", r.Key, true)
	w.str("h", r.Holder, false)
	w.int("t", int64(r.TTL))
	w.int("w", int64(r.Wait))
	w.str("l", r.Lease, false)
	w.bool("fb", r.Fallback)
	w.str("sk", r.Skip, false)
	return w.err
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *lockOpRequest) DecodeMsgpack(dec *msgpack.Decoder) error {
	*r = lockOpRequest{}
	return decodeFields(dec, func(name string) error {
		var err error
		switch name {
		case "op":
			r.Op, err = dec.DecodeString()
		case "k":
			r.Key, err = dec.DecodeString()
		case "h":
			r.Holder, err = dec.DecodeString()
		case "t":
			r.TTL, err = dec.DecodeDuration()
		case "w":
			r.Wait, err = dec.DecodeDuration()
		case "l":
			r.Lease, err = dec.DecodeString()
		case "fb":
			r.Fallback, err = dec.DecodeBool()
		case "sk":
			r.Skip, err = dec.DecodeString()
		default:
			err = dec.Skip()
		}
		return err
	})
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r lockOpResponse) EncodeMsgpack(enc *msgpack.Encoder) error {
	n := 1 + count(r.Error != "", r.Redirect != "", r.Owner != "", r.Token != 0, r.Lease != "",
		r.TTL != 0, r.Held, r.Holder != "", r.Remaining != 0, r.Waiters != 0, r.Fallback, r.Leaving)
	w := fieldWriter{enc: enc}
	w.mapLen(n)
	w.str("c", r.Code, true)
	w.str("e", r.Error, false)
	w.str("r", r.Redirect, false)
	w.str("o", r.Owner, false)
	w.int("tk", r.Token)
	w.str("l", r.Lease, false)
	w.int("t", int64(r.TTL))
	w.bool("hd", r.Held)
	w.str("h", r.Holder, false)
	w.int("rm", int64(r.Remaining))
	w.compactInt("wt", int64(r.Waiters))
	w.bool("fb", r.Fallback)
	w.bool("lv", r.Leaving)
	return w.err
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *lockOpResponse) DecodeMsgpack(dec *msgpack.Decoder) error {
	*r = lockOpResponse{}
	return decodeFields(dec, func(name string) error {
		var err error
		switch name {
		case "c":
			r.Code, err = dec.DecodeString()
		case "e":
			r.Error, err = dec.DecodeString()
		case "r":
			r.Redirect, err = dec.DecodeString()
		case "o":
			r.Owner, err = dec.DecodeString()
		case "tk":
			r.Token, err = dec.DecodeInt64()
		case "l":
			r.Lease, err = dec.DecodeString()
		case "t":
			r.TTL, err = dec.DecodeDuration()
		case "hd":
			r.Held, err = dec.DecodeBool()
		case "h":
			r.Holder, err = dec.DecodeString()
		case "rm":
			r.Remaining, err = dec.DecodeDuration()
		case "wt":
			var n int64
			n, err = dec.DecodeInt64()
			r.Waiters = int(n)
		case "fb":
			r.Fallback, err = dec.DecodeBool()
		case "lv":
			r.Leaving, err = dec.DecodeBool()
		default:
			err = dec.Skip()
		}
		return err
	})
}

// decodeFields reads a msgpack map of string keys, calling field with each
// key to read its value. A nil map is an empty one; anything else that is
// not a map is refused, as reflection refuses it.
func decodeFields(dec *msgpack.Decoder, field func(name string) error) error {
	c, err := dec.PeekCode()
	if err != nil {
		return err
	}
	if !msgpcode.IsFixedMap(c) && c != msgpcode.Map16 && c != msgpcode.Map32 && c != msgpcode.Nil {
		return fmt.Errorf("msgpack: unexpected code=%x decoding map length", c)
	}
	n, err := dec.DecodeMapLen()
	if err != nil {
		return err
	}
	for range n { // n is -1 for nil
		name, err := dec.DecodeString()
		if err != nil {
			return err
		}
		if err := field(name); err != nil {
			return fmt.Errorf("field %q: %w", name, err)
		}
	}
	return nil
}

// fieldWriter writes a msgpack map's entries, keeping the first error.
type fieldWriter struct {
	enc *msgpack.Encoder
	err error
}

func (w *fieldWriter) mapLen(n int) {
	if w.err == nil {
		w.err = w.enc.EncodeMapLen(n)
	}
}

func (w *fieldWriter) key(name string) bool {
	if w.err == nil {
		w.err = w.enc.EncodeString(name)
	}
	return w.err == nil
}

// str writes a string field, leaving it out when empty unless always.
func (w *fieldWriter) str(name, v string, always bool) {
	if (v != "" || always) && w.key(name) {
		w.err = w.enc.EncodeString(v)
	}
}

func (w *fieldWriter) int(name string, v int64) {
	if v != 0 && w.key(name) {
		w.err = w.enc.EncodeInt64(v)
	}
}

// compactInt writes an int field as reflection writes a Go int: in as few
// bytes as hold it.
func (w *fieldWriter) compactInt(name string, v int64) {
	if v != 0 && w.key(name) {
		w.err = w.enc.EncodeInt(v)
	}
}

func (w *fieldWriter) bool(name string, v bool) {
	if v && w.key(name) {
		w.err = w.enc.EncodeBool(v)
	}
}

// count returns how many of bs are true.
func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
