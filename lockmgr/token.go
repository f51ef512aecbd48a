package lockmgr

import "fmt"

// Token layout: a fencing token is one positive int64,
//
//	bit 63: 0 | bits 62..32: epoch (31 bits) | bits 31..0: sequence (32 bits)
//
// so tokens compare as integers exactly as (epoch, sequence) pairs compare. Epochs run from 1
// to MaxEpoch and sequences from 1 to MaxSequence; a key's first grant under a new epoch has
// sequence 1.
const (
	// EpochBits is the width of the epoch in a token.
	EpochBits = 31
	// SequenceBits is the width of the sequence in a token.
	SequenceBits = 32
	// MaxEpoch is the largest epoch.
	MaxEpoch = 1<<EpochBits - 1
	// MaxSequence is the largest sequence under one epoch. A table that reached it refuses
	// to grant on the key with ErrSequenceExhausted until the owner sets a larger epoch.
	MaxSequence = 1<<SequenceBits - 1
)

// MakeToken packs an epoch (1 to MaxEpoch) and a sequence into a token.
func MakeToken(epoch, seq uint32) (int64, error) {
	if epoch == 0 || epoch > MaxEpoch {
		return 0, fmt.Errorf("%w: epoch %d, must be from 1 to %d", ErrBadEpoch, epoch, MaxEpoch)
	}
	return int64(epoch)<<SequenceBits | int64(seq), nil
}

// SplitToken unpacks a token made by MakeToken.
func SplitToken(token int64) (epoch, seq uint32) {
	return uint32(uint64(token) >> SequenceBits & MaxEpoch), uint32(token)
}
