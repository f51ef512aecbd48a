package lockmgr

import "fmt"

// Token layout: a fencing token is one positive integer below 2^52,
//
//	bits 63..52: 0 | bits 51..21: epoch (31 bits) | bits 20..0: sequence (21 bits)
//
// so tokens compare as integers exactly as (epoch, sequence) pairs compare, and survive
// every JSON reader: a double (JavaScript, jq) holds integers up to 2^53 exactly. Epochs run
// from 1 to MaxEpoch and sequences from 1 to MaxSequence (2,097,151 grants of one key under
// one epoch; then the owner takes a new epoch); a key's first grant under a new epoch has
// sequence 1.
const (
	// EpochBits is the width of the epoch in a token.
	EpochBits = 31
	// SequenceBits is the width of the sequence in a token.
	SequenceBits = 21
	// MaxEpoch is the largest epoch.
	MaxEpoch = 1<<EpochBits - 1
	// MaxSequence is the largest sequence under one epoch. A table that reached it refuses
	// to grant on the key with ErrSequenceExhausted until the owner sets a larger epoch.
	MaxSequence = 1<<SequenceBits - 1
)

// MakeToken packs an epoch (1 to MaxEpoch) and a sequence (0 to MaxSequence) into a token.
func MakeToken(epoch, seq uint32) (int64, error) {
	if epoch == 0 || epoch > MaxEpoch {
		return 0, fmt.Errorf("%w: epoch %d, must be from 1 to %d", ErrBadEpoch, epoch, MaxEpoch)
	}
	if seq > MaxSequence {
		return 0, fmt.Errorf("%w: sequence %d above %d", ErrSequenceExhausted, seq, MaxSequence)
	}
	return int64(epoch)<<SequenceBits | int64(seq), nil
}

// SplitToken unpacks a token made by MakeToken.
func SplitToken(token int64) (epoch, seq uint32) {
	return uint32(uint64(token) >> SequenceBits & MaxEpoch), uint32(token & MaxSequence)
}
