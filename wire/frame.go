package wire

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	"lukechampine.com/blake3"
)

// Frame layout and limits. Every WebSocket message after the handshake is
// one frame:
//
//	0  8  routing id, blinded   client->relay: recipient; relay->client: sender;
//	                            all-zero: the relay itself (a relay command)
//	8  1  flags, blinded        FlagEphemeral, FlagReceipt; every other bit
//	                            must be zero
//	9  .. body                  a peer envelope (opaque to the relay) or a
//	                            sealed relay command
//
// Blinding: frame i (counted from 0 in each direction of each connection,
// relay commands included) XORs its first 9 bytes with bytes [16i, 16i+9) of
// the ChaCha20 keystream (RFC 8439, zero nonce, counter from 0) under that
// direction's blinding key. The keys come from the handshake, so they are
// fresh for every connection: an observer of the wire cannot link two
// connections of one client, nor tell which frames go to the same peer.
const (
	FrameHeaderSize = RoutingIDSize + 1 // 9

	// FlagEphemeral asks the relay to deliver the frame only to a receiving
	// connection of the recipient that is online now, and never to store
	// it (typing and presence). Relays set it on such frames they forward.
	FlagEphemeral byte = 1 << 0

	// FlagReceipt marks a frame whose envelope is an acknowledgement
	// (delivered, read). The relay keeps stored receipts under a quota of
	// their own and hands them to every connection of the recipient, its
	// send-only ones too, so that an identity that only sends collects the
	// receipts of what it sent each time it sends (PROTOCOL.md §6). Relays
	// keep it on the frames they forward.
	FlagReceipt byte = 1 << 1

	frameFlagsKnown = FlagEphemeral | FlagReceipt

	// MaxFrameSize is the largest frame either side accepts: a peer
	// envelope with the largest padding bucket. Readers check it before
	// reading the body.
	MaxFrameSize = FrameHeaderSize + EnvelopeHeaderSize + MaxPadded + TagSize // 65594

	// MaxFramesPerDirection is how many frames one direction of a
	// connection can carry: 16-byte mask slots in ChaCha20's 2^32 blocks.
	// A side that reaches it closes the connection; the client reconnects.
	MaxFramesPerDirection = 1 << 34

	maskSlot = 16
)

// Frame errors. Any of them from OpenHeader or OpenCommand means the
// connection is out of step or hostile and must be closed.
var (
	// ErrFrameSize: a frame shorter than a header plus one byte, or longer
	// than MaxFrameSize.
	ErrFrameSize = errors.New("frame size out of range")
	// ErrFrameFlags: a flag bit this version does not know.
	ErrFrameFlags = errors.New("unknown frame flags")
	// ErrFramesExhausted: MaxFramesPerDirection reached.
	ErrFramesExhausted = errors.New("connection frame counter exhausted")
	// ErrCommandAuth: a relay command that does not authenticate.
	ErrCommandAuth = errors.New("relay command does not authenticate")
)

// Header is a frame header after unblinding.
type Header struct {
	Index uint64    // position of the frame in its direction, from 0
	ID    RoutingID // recipient (to the relay) or sender (from it)
	Flags byte
}

// Framer is one direction of one connection: it blinds or unblinds frame
// headers in order and seals or opens relay commands. Not safe for
// concurrent use: the send Framer is owned by the connection's writer, the
// receive Framer by its reader, and frames must pass through it in the
// order they cross the wire.
type Framer struct {
	stream *chacha20.Cipher
	cmd    cipher.AEAD
	next   uint64
}

func newFramer(transportKey [KeySize]byte) *Framer {
	var bk, ck [KeySize]byte
	blake3.DeriveKey(bk[:], ContextBlind, transportKey[:])
	blake3.DeriveKey(ck[:], ContextCommand, transportKey[:])
	var nonce [chacha20.NonceSize]byte
	stream, err := chacha20.NewUnauthenticatedCipher(bk[:], nonce[:])
	if err != nil {
		panic(err) // sizes are constants
	}
	aead, err := chacha20poly1305.New(ck[:])
	if err != nil {
		panic(err)
	}
	return &Framer{stream: stream, cmd: aead}
}

// Next is the index the next frame through f will have.
func (f *Framer) Next() uint64 { return f.next }

func (f *Framer) mask(b []byte) (uint64, error) {
	if f.next >= MaxFramesPerDirection {
		return 0, ErrFramesExhausted
	}
	var slot [maskSlot]byte
	copy(slot[:], b[:FrameHeaderSize])
	f.stream.XORKeyStream(slot[:], slot[:])
	copy(b, slot[:FrameHeaderSize])
	i := f.next
	f.next++
	return i, nil
}

// SealHeader writes id and flags into frame[0:9] and blinds them in place.
// The body must already follow. It returns the frame's index, which the
// relay's Custody answer and the client's Ack refer to.
func (f *Framer) SealHeader(frame []byte, id RoutingID, flags byte) (uint64, error) {
	if len(frame) <= FrameHeaderSize || len(frame) > MaxFrameSize {
		return 0, ErrFrameSize
	}
	if flags&^frameFlagsKnown != 0 {
		return 0, ErrFrameFlags
	}
	copy(frame, id[:])
	frame[RoutingIDSize] = flags
	return f.mask(frame)
}

// OpenHeader unblinds frame[0:9] in place and returns the header. It
// consumes a mask slot even when it fails, but a failure is fatal for the
// connection anyway.
func (f *Framer) OpenHeader(frame []byte) (Header, error) {
	if len(frame) <= FrameHeaderSize || len(frame) > MaxFrameSize {
		return Header{}, ErrFrameSize
	}
	i, err := f.mask(frame)
	if err != nil {
		return Header{}, err
	}
	h := Header{Index: i, Flags: frame[RoutingIDSize]}
	copy(h.ID[:], frame)
	if h.Flags&^frameFlagsKnown != 0 {
		return h, ErrFrameFlags
	}
	return h, nil
}

func commandNonce(i uint64) [chacha20poly1305.NonceSize]byte {
	var n [chacha20poly1305.NonceSize]byte
	binary.LittleEndian.PutUint64(n[:], i)
	return n
}

// AppendCommand appends a complete relay-command frame to dst: the header
// (relay id, no flags) blinded, then the command sealed with
// ChaCha20-Poly1305 under this direction's command key, nonce = the frame's
// index (little-endian, 12 bytes), additional data = the unblinded header.
func (f *Framer) AppendCommand(dst []byte, c *Command) ([]byte, uint64, error) {
	start := len(dst)
	var zero [FrameHeaderSize]byte
	dst = append(dst, zero[:]...)
	// The plaintext goes where the ciphertext will be, sealed in place:
	// a relay writes a custody command for every burst it routes.
	dst, err := c.appendTo(dst)
	if err != nil {
		return nil, 0, err
	}
	body := start + FrameHeaderSize
	if len(dst)-start+TagSize > MaxFrameSize {
		return nil, 0, fmt.Errorf("relay command: %w", ErrFrameSize)
	}
	n := commandNonce(f.next)
	dst = f.cmd.Seal(dst[:body], n[:], dst[body:], zero[:])
	i, err := f.mask(dst[start:])
	if err != nil {
		return nil, 0, err
	}
	return dst, i, nil
}

// OpenCommand opens the body of a frame whose unblinded header h names the
// relay. It decrypts in place.
func (f *Framer) OpenCommand(h Header, frame []byte) (*Command, error) {
	c := new(Command)
	if err := f.OpenCommandInto(c, h, frame); err != nil {
		return nil, err
	}
	return c, nil
}

// OpenCommandInto is OpenCommand parsing into c (see UnmarshalBinary).
func (f *Framer) OpenCommandInto(c *Command, h Header, frame []byte) error {
	if !h.ID.IsRelay() || h.Flags != 0 || len(frame) < FrameHeaderSize+1+TagSize {
		return ErrCommandAuth
	}
	n := commandNonce(h.Index)
	var ad [FrameHeaderSize]byte
	body, err := f.cmd.Open(frame[FrameHeaderSize:FrameHeaderSize], n[:], frame[FrameHeaderSize:], ad[:])
	if err != nil {
		return ErrCommandAuth
	}
	return c.UnmarshalBinary(body)
}
