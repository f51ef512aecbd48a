package ring

import (
	"errors"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr error
	}{
		{"default", DefaultConfig(), nil},
		{"one vnode", Config{VNodes: 1}, nil},
		{"max vnodes", Config{VNodes: MaxVNodes}, nil},
		{"zero config", Config{}, ErrBadConfig},
		{"negative vnodes", Config{VNodes: -1}, ErrBadConfig},
		{"too many vnodes", Config{VNodes: MaxVNodes + 1}, ErrBadConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Validate() = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	if got := DefaultConfig().VNodes; got != 128 {
		t.Errorf("DefaultConfig().VNodes = %d, want 128", got)
	}
}
