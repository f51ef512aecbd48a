package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// checkObjectKeys refuses a JSON body in which an object repeats a key, or
// has a key with an upper-case letter. encoding/json keeps the last of
// repeated keys and matches field names without regard to case, so
// {"delta":1,"delta":2} would count 2 and {"DELTA":1} would pass for a
// known field; every field of the API's request bodies is lower case. It
// reports nothing for malformed JSON: the decoder that follows says what
// is wrong with it.
func checkObjectKeys(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	// One frame per open object or array; keys is nil for an array.
	type frame struct {
		keys      map[string]bool
		expectKey bool
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or malformed JSON
		}
		top := len(stack) - 1
		if top >= 0 && stack[top].keys != nil && stack[top].expectKey {
			if key, ok := tok.(string); ok {
				switch {
				case stack[top].keys[key]:
					return fmt.Errorf("the body repeats the field %q", key)
				case strings.ContainsAny(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
					return fmt.Errorf("unknown field %q (field names are lower case)", key)
				}
				stack[top].keys[key] = true
				stack[top].expectKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{keys: map[string]bool{}, expectKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
			top--
		}
		// A value ended: the object holding it, if any, expects a key next.
		if top >= 0 && stack[top].keys != nil {
			stack[top].expectKey = true
		}
	}
}
