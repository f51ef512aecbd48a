package agent

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestJSONTextValid checks that jsonText decodes as encoding/json does and
// flags the strings it changes (invalid bytes, unpaired surrogates).
func TestJSONTextValid(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     string
		want    string
		invalid bool
	}{
		{"plain", `"abc"`, "abc", false},
		{"utf-8", `"é日本"`, "é日本", false},
		{"escapes", `"a\"b\\c\/d\n\u00e9"`, "a\"b\\c/d\né", false},
		{"pair", `"\ud83d\ude00"`, "😀", false},
		{"pair upper case", `"\uD83D\uDE00"`, "😀", false},
		{"replacement char itself", `"\ufffd` + "\uFFFD" + `"`, "\uFFFD\uFFFD", false},
		{"lone high", `"bj\ud83d"`, "bj\uFFFD", true},
		{"high then text", `"\ud83dx"`, "\uFFFDx", true},
		{"high then escape", `"\ud83d\n"`, "\uFFFD\n", true},
		{"two highs", `"\ud83d\ud83d"`, "\uFFFD\uFFFD", true},
		{"lone low", `"\ude00"`, "\uFFFD", true},
		{"low then high", `"\ude00\ud83d"`, "\uFFFD\uFFFD", true},
		{"raw 0xff", "\"a\xffb\"", "a\uFFFDb", true},
		{"raw encoded surrogate", "\"\xed\xa0\x80\"", "\uFFFD\uFFFD\uFFFD", true},
		{"truncated utf-8", "\"\xc3\"", "\uFFFD", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got jsonText
			if err := json.Unmarshal([]byte(tc.raw), &got); err != nil {
				t.Fatal(err)
			}
			if got.s != tc.want || !got.set || got.invalid != tc.invalid {
				t.Fatalf("%s: got %+q set %v invalid %v, want %+q invalid %v", tc.raw, got.s, got.set, got.invalid, tc.want, tc.invalid)
			}
		})
	}
	var null jsonText
	if err := json.Unmarshal([]byte(`null`), &null); err != nil || null.set || null.invalid {
		t.Fatalf("null: %+v, %v", null, err)
	}
	var wrong struct {
		Key jsonText `json:"key"`
	}
	err := json.Unmarshal([]byte(`{"key":5}`), &wrong)
	if err == nil || !strings.Contains(err.Error(), "cannot unmarshal number into Go struct field") || !strings.Contains(err.Error(), "key") {
		t.Fatalf("a number for a string: %v", err)
	}
}
