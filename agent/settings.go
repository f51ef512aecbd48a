package agent

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/serf/serf"
)

// Serf tags every peer sets. Members without role=peer (a stock serf agent
// joined to look around) are listed but never enter the ring.
const (
	TagRole     = "role"
	RolePeer    = "peer"
	TagRPC      = "rpc"
	TagProtocol = "rl-proto"
	TagVNodes   = "rl-vnodes"
	// TagLocks carries the cluster-wide lock timings: "<lock-delay>/<drift margin>".
	TagLocks = "rl-locks"
)

// ErrSettingsMismatch is returned (wrapped, naming the setting) by Start and
// Join when the cluster's cluster-wide settings differ from this peer's.
var ErrSettingsMismatch = errors.New("agent: cluster settings differ")

// clusterSetting is one setting every peer must share.
type clusterSetting struct {
	tag  string
	flag string // how a user changes it
}

var clusterSettings = []clusterSetting{
	{tag: TagProtocol, flag: "protocol version (upgrade the older peer)"},
	{tag: TagVNodes, flag: "--vnodes"},
	{tag: TagLocks, flag: "--lock-delay and --lock-drift-margin"},
}

// settingsTags are this peer's cluster-wide settings as serf tags.
func settingsTags(cfg Config) map[string]string {
	return map[string]string{
		TagProtocol: strconv.Itoa(ProtocolVersion),
		TagVNodes:   strconv.Itoa(cfg.VNodes),
		TagLocks:    cfg.Locks.LockDelay.String() + "/" + cfg.Locks.DriftMargin.String(),
	}
}

// settingsGuard is serf's merge delegate: it refuses to merge with peers whose
// cluster-wide settings differ. It keeps no state: a Join learns of a refusal
// from the error serf returns (see mismatchIn), so a refusal of some other
// peer's merge never shows up as this peer's own.
type settingsGuard struct {
	self string
	mine map[string]string
}

var _ serf.MergeDelegate = (*settingsGuard)(nil)

// NotifyMerge is called by serf (from memberlist's goroutines) before it
// merges remote members into this peer's view.
func (g *settingsGuard) NotifyMerge(members []*serf.Member) error {
	for _, m := range members {
		if err := g.check(m); err != nil {
			return err
		}
	}
	return nil
}

func (g *settingsGuard) check(m *serf.Member) error {
	if m.Name == g.self || m.Tags[TagRole] != RolePeer {
		return nil
	}
	for _, s := range clusterSettings {
		if theirs, mine := m.Tags[s.tag], g.mine[s.tag]; theirs != mine {
			return fmt.Errorf("%w: %s is %q on peer %s but %q here; every peer must use the same %s",
				ErrSettingsMismatch, s.tag, theirs, m.Name, mine, s.flag)
		}
	}
	return nil
}

// mismatchIn finds this peer's refusal in the error of a failed serf.Join
// (memberlist flattens the delegate's error into text) and returns it as an
// error wrapping ErrSettingsMismatch, or nil.
func mismatchIn(err error) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	i := strings.Index(text, ErrSettingsMismatch.Error())
	if i < 0 {
		return nil
	}
	detail := strings.TrimPrefix(text[i+len(ErrSettingsMismatch.Error()):], ": ")
	if j := strings.IndexByte(detail, '\n'); j >= 0 {
		detail = detail[:j]
	}
	return fmt.Errorf("%w: %s", ErrSettingsMismatch, detail)
}
