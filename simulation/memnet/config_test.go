package memnet_test

import (
	"strings"
	"testing"

	"github.com/ringleader/ringleader/simulation/memnet"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*memnet.Config)
		wantErr string // a part of the error; "" for none
	}{
		{name: "default", edit: func(*memnet.Config) {}},
		{name: "packet queue zero", edit: func(c *memnet.Config) { c.PacketQueue = 0 }, wantErr: "PacketQueue is 0"},
		{name: "stream buffer negative", edit: func(c *memnet.Config) { c.StreamBuffer = -1 }, wantErr: "StreamBuffer is -1"},
		{name: "backlog zero", edit: func(c *memnet.Config) { c.AcceptBacklog = 0 }, wantErr: "AcceptBacklog is 0"},
		{name: "connect timeout zero", edit: func(c *memnet.Config) { c.ConnectTimeout = 0 }, wantErr: "ConnectTimeout is 0s"},
		{name: "two problems", edit: func(c *memnet.Config) { c.PacketQueue, c.AcceptBacklog = 0, 0 }, wantErr: "PacketQueue is 0; it must be at least 1\nmemnet: AcceptBacklog is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := memnet.DefaultConfig()
			tt.edit(&cfg)
			before := cfg
			err := cfg.Validate()
			if cfg != before {
				t.Errorf("Validate changed the config: %+v, was %+v", cfg, before)
			}
			_, newErr := memnet.New(cfg)
			switch {
			case tt.wantErr == "" && (err != nil || newErr != nil):
				t.Fatalf("Validate: %v; New: %v; want no error", err, newErr)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate: %v; want an error containing %q", err, tt.wantErr)
			case tt.wantErr != "" && newErr == nil:
				t.Fatalf("New accepted a config Validate rejects")
			}
		})
	}
}
