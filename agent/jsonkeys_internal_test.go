package agent

import (
	"encoding/json"
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

// TestJSONBodyErrorNamesNoGoTypes: a body of the wrong shape is explained
// in JSON's terms (found by a black-box review: messages named Go struct
// types such as struct { Delta json.RawMessage "json:\"delta\"" }).
func TestJSONBodyErrorNamesNoGoTypes(t *testing.T) {
	for _, tc := range []struct {
		body string
		lock bool
		want string
	}{
		{`[1]`, false, "the body must be a JSON object, not an array"},
		{`"x"`, false, "the body must be a JSON object, not a string"},
		{`{"items": {"key": "k"}}`, false, `field "items" must be an array, not an object`},
		{`{"delta": 1,}`, false, "invalid JSON at byte"},
		{`{"ttl": 5}`, true, `field "ttl" must be a string, not a number`},
		{`{"lease": true}`, true, `field "lease" must be a string, not true or false`},
		{`[]`, true, "the body must be a JSON object, not an array"},
		{`{"nope": 1}`, true, `unknown field "nope"`},
	} {
		var err error
		if tc.lock {
			_, err = parseLockBodyStrict([]byte(tc.body))
		} else {
			var v struct {
				Delta json.RawMessage `json:"delta"`
				Items []struct {
					Key string `json:"key"`
				} `json:"items"`
			}
			err = decodeJSON([]byte(tc.body), &v)
		}
		if err == nil {
			t.Errorf("%s: no error", tc.body)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %q, want it to say %q", tc.body, msg, tc.want)
		}
		for _, goWord := range []string{"Go value", "Go struct", "struct {", "json.RawMessage", "json: "} {
			if strings.Contains(msg, goWord) {
				t.Errorf("%s: %q names Go's %q", tc.body, msg, goWord)
			}
		}
	}
}
