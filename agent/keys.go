package agent

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxKeyLen is the longest key (counter or lock name) in bytes.
const MaxKeyLen = 512

// ErrBadKey is returned (wrapped, saying why) for an unusable key.
var ErrBadKey = errors.New("bad key")

// ValidateKey checks a user-supplied key: 1-512 bytes of UTF-8 without
// control characters.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: key is empty; give 1-%d bytes", ErrBadKey, MaxKeyLen)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: key is %d bytes, limit %d", ErrBadKey, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key is not valid UTF-8", ErrBadKey)
	}
	for i, r := range key {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: key has control character %U at byte %d", ErrBadKey, r, i)
		}
	}
	return nil
}
