package agent

import (
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonText is a JSON string field that becomes a key or a label.
// encoding/json replaces invalid UTF-8 and \u escapes of unpaired
// surrogates with U+FFFD, which would silently change such a key into
// another; jsonText decodes the same way but records that it happened, so
// the caller can refuse the value instead.
type jsonText struct {
	s string
	// set is true once a JSON string (not null) was decoded.
	set bool
	// invalid is true when the string had bytes that are not UTF-8 or an
	// escape of half a surrogate pair.
	invalid bool
}

// UnmarshalJSON decodes a JSON string (null leaves t as it is, as it
// leaves a string).
func (t *jsonText) UnmarshalJSON(raw []byte) error {
	if string(raw) == "null" {
		return nil
	}
	// For anything but a string this returns encoding/json's own type
	// error, which the decoder completes with the field's name.
	if err := json.Unmarshal(raw, &t.s); err != nil {
		return err
	}
	t.set, t.invalid = true, !validJSONText(raw)
	return nil
}

// validJSONText reports whether the JSON string literal raw decodes
// without replacements: its bytes are UTF-8 and each \u escape of a high
// surrogate is followed by one of a low surrogate.
func validJSONText(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if i >= len(raw) || raw[i] != 'u' {
			continue
		}
		r, ok := hex4(raw, i+1)
		if !ok {
			return false
		}
		i += 4
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r >= 0xdc00 || i+6 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
			return false // a low half first, or a high half alone
		}
		if lo, ok := hex4(raw, i+3); !ok || lo < 0xdc00 || lo > 0xdfff {
			return false
		}
		i += 6
	}
	return true
}

// hex4 reads the four hex digits at raw[i:].
func hex4(raw []byte, i int) (rune, bool) {
	if i+4 > len(raw) {
		return 0, false
	}
	var r rune
	for _, c := range raw[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
