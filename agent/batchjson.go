package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Batch bodies are the bulk path: {"items": [{"key": "k", "delta": 1}, ...]}
// with up to MaxBatchItems items. encoding/json's reflection cost about a
// tenth of a batch's time, so the common exact form is parsed by hand:
// keys and idempotency keys without escapes, deltas as plain integers.
// Anything else (escapes, other fields, odd spacing is fine) makes
// parseBatchFast give up, and the strict decoder, which gives the error
// messages, parses the body instead. FuzzParseBatch checks that the two
// agree.

// parseBatchFast parses b, or returns ok false for anything it does not
// handle.
func parseBatchFast(b []byte) (items []CounterItem, ok bool) {
	p := fastParser{b: b}
	if !p.lit('{') || !p.str("items") || !p.lit(':') || !p.lit('[') {
		return nil, false
	}
	if p.peek(']') {
		p.i++
		return nil, p.lit('}') && p.end()
	}
	for {
		var it CounterItem
		haveKey, haveDelta := false, false
		if !p.lit('{') {
			return nil, false
		}
		for {
			name, ok := p.plainString()
			if !ok || !p.lit(':') {
				return nil, false
			}
			switch {
			case name == "key" && !haveKey:
				if it.Key, ok = p.plainString(); !ok {
					return nil, false
				}
				haveKey = true
			case name == "delta" && !haveDelta:
				if it.Delta, ok = p.integer(); !ok || it.Delta == 0 {
					return nil, false
				}
				haveDelta = true
			case name == "idempotency_key" && it.IdempotencyKey == "":
				if it.IdempotencyKey, ok = p.plainString(); !ok || it.IdempotencyKey == "" {
					return nil, false
				}
			default:
				return nil, false
			}
			if p.peekSkip(',') {
				p.i++
				continue
			}
			if !p.lit('}') {
				return nil, false
			}
			break
		}
		if !haveKey || !haveDelta || len(items) == MaxBatchItems {
			return nil, false
		}
		items = append(items, it)
		if p.peekSkip(',') {
			p.i++
			continue
		}
		if !p.lit(']') || !p.lit('}') || !p.end() {
			return nil, false
		}
		return items, true
	}
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) skip() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *fastParser) peek(c byte) bool { return p.i < len(p.b) && p.b[p.i] == c }

func (p *fastParser) peekSkip(c byte) bool { p.skip(); return p.peek(c) }

func (p *fastParser) lit(c byte) bool {
	if !p.peekSkip(c) {
		return false
	}
	p.i++
	return true
}

func (p *fastParser) end() bool { p.skip(); return p.i == len(p.b) }

// str consumes the string s (no escapes).
func (p *fastParser) str(s string) bool {
	got, ok := p.plainString()
	return ok && got == s
}

// plainString consumes a JSON string of printable ASCII or UTF-8 without
// escapes or control characters (anything else: ok false).
func (p *fastParser) plainString() (string, bool) {
	if !p.lit('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			raw := p.b[start:p.i]
			if !utf8.Valid(raw) {
				return "", false // encoding/json would replace the bad bytes
			}
			p.i++
			return string(raw), true
		case c == '\\' || c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// integer consumes a JSON integer in the int64 range.
func (p *fastParser) integer() (int64, bool) {
	p.skip()
	start := p.i
	if p.peek('-') {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	if p.i == digits || (p.b[digits] == '0' && p.i-digits > 1) {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	return n, err == nil
}

// parseBatchStrict parses a batch body with encoding/json, for the error
// messages and every form parseBatchFast leaves alone. A key or
// idempotency_key that is not valid UTF-8 (a byte that is not, or a \u
// escape of half a surrogate pair) refuses the batch: encoding/json would
// replace it with U+FFFD and count under another key.
func parseBatchStrict(b []byte) ([]CounterItem, error) {
	var body struct {
		Items []struct {
			Key            jsonText        `json:"key"`
			Delta          json.RawMessage `json:"delta"`
			IdempotencyKey jsonText        `json:"idempotency_key"`
		} `json:"items"`
	}
	if err := decodeJSON(b, &body); err != nil {
		return nil, err
	}
	items := make([]CounterItem, len(body.Items))
	for i, it := range body.Items {
		if it.Key.invalid {
			return nil, fmt.Errorf("item %d: %w: key is not valid UTF-8 (it has a byte that is not UTF-8 or a \\u escape of half a surrogate pair)", i, ErrBadKey)
		}
		if it.IdempotencyKey.invalid {
			return nil, fmt.Errorf("item %d (%q): %w: idempotency_key is not valid UTF-8; give 1 to %d bytes of printable ASCII", i, it.Key.s, ErrBadIdempotencyKey, MaxIdempotencyKeyLen)
		}
		if it.IdempotencyKey.set && it.IdempotencyKey.s == "" {
			// Not "no key": leave the field out for that.
			return nil, fmt.Errorf("item %d (%q): %w", i, it.Key.s, validateIdempotencyKey(""))
		}
		d, err := parseDelta(it.Delta, "item "+strconv.Itoa(i)+" ("+strconv.Quote(it.Key.s)+")")
		if err != nil {
			return nil, err
		}
		items[i] = CounterItem{Key: it.Key.s, Delta: d, IdempotencyKey: it.IdempotencyKey.s}
	}
	return items, nil
}

// appendBatchAnswer appends {"items": [{"key", "value"[, "replayed"]}...]}
// (with "error" first when err is set, and the list under "applied").
func appendBatchAnswer(b []byte, items []CounterItem, res []CounterResult, errMsg string) []byte {
	if errMsg != "" {
		b = append(b, `{"error":`...)
		b = appendJSONString(b, errMsg)
		b = append(b, `,"applied":[`...)
	} else {
		b = append(b, `{"items":[`...)
	}
	first := true
	for i, r := range res {
		if r.Key == "" {
			continue // not applied
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '{')
		if errMsg != "" { // which items were applied: a batch may write a key twice
			b = append(b, `"index":`...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, ',')
		}
		b = append(b, `"key":`...)
		b = appendJSONString(b, items[i].Key)
		b = append(b, `,"value":`...)
		b = strconv.AppendInt(b, r.Value, 10)
		if r.Replayed {
			b = append(b, `,"replayed":true`...)
		}
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}

// appendJSONString appends s as a JSON string, escaping what needs it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false) // as writeJSON
			_ = enc.Encode(s)
			return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
