package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
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

// jsonBodyError says why encoding/json refused a request body, in the
// API's terms rather than Go's: a wrong type names the field and the JSON
// type it takes, not a Go struct type.
func jsonBodyError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		got := jsonKind(te.Value)
		if te.Field == "" {
			return "the body must be a JSON object, not " + got
		}
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, jsonTypeOf(te.Type), got)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind turns encoding/json's description of a value ("array",
// "number 1.5") into "an array", "a number".
func jsonKind(v string) string {
	kind, _, _ := strings.Cut(v, " ")
	switch kind {
	case "":
		return "something else"
	case "array", "object":
		return "an " + kind
	case "bool":
		return "true or false"
	}
	return "a " + kind
}

// jsonTypeOf names the JSON type that a Go type decodes from.
func jsonTypeOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "another JSON type"
}
