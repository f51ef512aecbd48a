package lockmgr

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// voterFormatVersion is the first byte of an encoded VoterSet or VoterAcceptorState;
// decoders refuse other versions.
const voterFormatVersion = 1

// MarshalBinary encodes s: a format-version byte, then one msgpack array
//
//	[cluster, version, [member, ...]]
//
// The zero VoterSet (no committed set) encodes too.
func (s VoterSet) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(voterFormatVersion)
	e := msgpack.NewEncoder(&buf)
	if err := encodeVoterSet(e, s); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeVoterSet(e *msgpack.Encoder, s VoterSet) error {
	e.EncodeArrayLen(3)
	e.EncodeUint(s.Cluster)
	e.EncodeUint(s.Version)
	e.EncodeArrayLen(len(s.Members))
	for _, m := range s.Members {
		if err := e.EncodeString(m); err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalBinary decodes what MarshalBinary encoded: a valid set (VoterSet.Validate) or the
// zero set. Bad bytes give ErrBadEncoding, never a panic, and never an allocation larger
// than the input allows; on error s is unchanged.
func (s *VoterSet) UnmarshalBinary(b []byte) error {
	d, err := newVoterDecoder(b)
	if err != nil {
		return err
	}
	out := d.voterSet()
	if err := d.end(); err != nil {
		return err
	}
	if !isZeroSet(out) {
		if err := out.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrBadEncoding, err)
		}
	}
	*s = out
	return nil
}

func isZeroSet(s VoterSet) bool { return s.Cluster == 0 && s.Version == 0 && len(s.Members) == 0 }

// MarshalBinary encodes st: a format-version byte, then one msgpack array
//
//	[set, promised, accepted, change]
//	set:                [cluster, version, [member, ...]]
//	promised, accepted: [round, proposer]
//	change:             [op, member]
func (st VoterAcceptorState) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(voterFormatVersion)
	e := msgpack.NewEncoder(&buf)
	e.EncodeArrayLen(4)
	if err := encodeVoterSet(e, st.Set); err != nil {
		return nil, err
	}
	for _, b := range []Ballot{st.Promised, st.Accepted} {
		e.EncodeArrayLen(2)
		e.EncodeUint(b.Round)
		e.EncodeString(b.Proposer)
	}
	e.EncodeArrayLen(2)
	e.EncodeUint(uint64(st.Change.Op))
	if err := e.EncodeString(st.Change.Member); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary decodes what MarshalBinary encoded, and checks the result with
// VoterAcceptorState.Validate. Bad bytes give ErrBadEncoding, never a panic, and never an
// allocation larger than the input allows; on error st is unchanged.
func (st *VoterAcceptorState) UnmarshalBinary(b []byte) error {
	d, err := newVoterDecoder(b)
	if err != nil {
		return err
	}
	var out VoterAcceptorState
	d.array(4, 1)
	out.Set = d.voterSet()
	out.Promised = d.ballot()
	out.Accepted = d.ballot()
	d.array(2, 1)
	op := d.uint64()
	if op > 255 && d.err == nil {
		d.err = fmt.Errorf("%w: voter op %d", ErrBadEncoding, op)
	}
	out.Change.Op = VoterOp(op)
	out.Change.Member = d.string(MaxMemberLen)
	if err := d.end(); err != nil {
		return err
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*st = out
	return nil
}

func newVoterDecoder(b []byte) (*stateDecoder, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadEncoding)
	}
	if b[0] != voterFormatVersion {
		return nil, fmt.Errorf("%w: voter format version %d, this build reads version %d", ErrBadEncoding, b[0], voterFormatVersion)
	}
	d := &stateDecoder{}
	d.r.Reset(b[1:])
	d.d = msgpack.NewDecoder(&d.r)
	return d, nil
}

// end reports the first decoding error, or bytes left over.
func (d *stateDecoder) end() error {
	if d.err != nil {
		return d.err
	}
	if d.r.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the value", ErrBadEncoding, d.r.Len())
	}
	return nil
}

func (d *stateDecoder) voterSet() VoterSet {
	var s VoterSet
	d.array(3, 1)
	s.Cluster = d.uint64()
	s.Version = d.uint64()
	n := d.array(-1, 1)
	if n > MaxVoters {
		d.err = fmt.Errorf("%w: %d voters, at most %d", ErrBadEncoding, n, MaxVoters)
		return s
	}
	if n > 0 {
		s.Members = make([]string, 0, n)
	}
	for range n {
		m := d.string(MaxMemberLen)
		if d.err != nil {
			break
		}
		s.Members = append(s.Members, m)
	}
	return s
}

func (d *stateDecoder) ballot() Ballot {
	var b Ballot
	d.array(2, 1)
	b.Round = d.uint64()
	b.Proposer = d.string(MaxProposerLen)
	return b
}
