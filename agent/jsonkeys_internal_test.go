package agent

import (
	"strings"
	"testing"
)

func TestCheckObjectKeys(t *testing.T) {
	for _, tc := range []struct {
		body string
		want string // a substring of the error; "" for none
	}{
		{`{"delta":1}`, ""},
		{`{"items":[{"key":"a","delta":1},{"key":"a","delta":2}]}`, ""}, // one key per object
		{`{"key":"UPPER","holder":"Label"}`, ""},                        // values may have any case
		{`{"a":{"b":1},"b":[{"a":1}],"c":[[{"c":1}]]}`, ""},
		{`{"delta":1,"delta":2}`, `repeats the field "delta"`},
		{`{"DELTA":1}`, `unknown field "DELTA"`},
		{`{"items":[{"key":"a","delta":1,"key":"b"}]}`, `repeats the field "key"`},
		{`{"items":[{"key":"a"}],"items":[]}`, `repeats the field "items"`},
		{`{"items":[{"Key":"a","delta":1}]}`, `unknown field "Key"`},
		{`{"a":{"x":1},"b":{"x":1,"x":2}}`, `repeats the field "x"`},
		{`{"delta":1,`, ""}, // malformed: the decoder reports it
		{`[1,{"a":1,"a":1}]`, `repeats the field "a"`},
		{``, ""},
	} {
		err := checkObjectKeys([]byte(tc.body))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want no error", tc.body, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error saying %q", tc.body, err, tc.want)
		}
	}
}
