package lockmgr

import (
	"errors"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"negative drift", func(c *Config) { c.DriftMargin = -1 }, false},
		{"max ttl below 1s", func(c *Config) { c.LockDelay = 2 * time.Second }, false},
		{"default ttl above max", func(c *Config) { c.DefaultTTL = 14 * time.Second }, false},
		{"default ttl below min", func(c *Config) { c.DefaultTTL = time.Millisecond }, false},
		{"negative wait", func(c *Config) { c.MaxWait = -1 }, false},
		{"no waiters", func(c *Config) { c.MaxWaiters = 0 }, false},
		{"too many waiters", func(c *Config) { c.MaxWaiters = MaxWaitersLimit + 1 }, false},
		{"no voter retry", func(c *Config) { c.VoterRetry = 0 }, false},
		{"zero config", func(c *Config) { *c = Config{} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			before := c
			err := c.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadConfig)) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if c != before {
				t.Fatal("Validate changed the config")
			}
			if _, err := NewTable(c); (err == nil) != tt.ok {
				t.Fatalf("NewTable: %v", err)
			}
		})
	}
}
