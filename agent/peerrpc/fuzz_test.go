package peerrpc

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodeFrame feeds arbitrary bytes to the frame reader and to Verify:
// they must give an error or a frame, never a panic.
func FuzzDecodeFrame(f *testing.F) {
	auth, err := NewAuth([]byte("fuzz"), time.Minute, time.Now)
	if err != nil {
		f.Fatal(err)
	}
	for _, fr := range []*Frame{
		{Kind: KindRequest, ID: 1, Method: "ping", Body: []byte{0x80}},
		{Kind: KindResponse, ID: 9, Code: "unavailable", Error: "no quorum"},
	} {
		wire, err := AppendFrame(nil, fr, auth, nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire)
		wire, err = AppendFrame(nil, fr, nil, nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ReadFrame(bytes.NewReader(b), 1<<16)
		if err != nil {
			return
		}
		_ = auth.Verify(fr, nil)
		if _, err := AppendFrame(nil, fr, nil, nil); err != nil {
			t.Fatalf("a decoded frame does not encode: %v", err)
		}
	})
}

// FuzzCheckMsgpack checks the body validator never panics and that whatever
// it accepts decodes without error into a generic value.
func FuzzCheckMsgpack(f *testing.F) {
	f.Add([]byte{0x81, 0xa1, 'a', 0x01})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x92, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xd7, 0xff, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := CheckMsgpack(b); err != nil {
			return
		}
		var v any
		_ = Unmarshal(b, &v)
	})
}
