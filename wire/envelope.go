package wire

import (
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/chacha20poly1305"
	"lukechampine.com/blake3"
)

// Peer envelope layout: the body of a data frame, end-to-end encrypted
// from one identity to another. The relay never opens it.
//
//	0   1   envelope version (ProtocolVersion)
//	1   24  nonce, random
//	25  8   pair tag: keyed BLAKE3 (pair-tag key of sender->recipient) of
//	        the nonce, 8 bytes. Lets the recipient tell a frame that is not
//	        for this sender->recipient pair (misrouted, reflected) from a
//	        damaged one before it decrypts anything.
//	33  L+16 XChaCha20-Poly1305 of the padded inner plaintext (L bytes, a
//	        padding bucket) under the message key of sender->recipient,
//	        nonce as above, additional data = bytes 0..33.
//
// Inner plaintext (L bytes):
//
//	0    16  message id, random, chosen by the sender; the same id on
//	         every retry of one message
//	16   8   sent at, unix milliseconds, u64 LE
//	24   1   message type (MessageType)
//	25   1   inner flags, zero in this version
//	26   4   body length n, u32 LE
//	30   n   body
//	30+n ..  zero padding up to L-64
//	L-64 64  Ed25519ctx signature, context SigContextMessage, over
//	         version ‖ sender fingerprint ‖ recipient fingerprint ‖ bytes 0..L-64
//
// The signature sits inside the ciphertext: it still stops a holder of the
// recipient's key (who can compute the message key) from forging messages
// from others, but no one without the message key sees it, so the relay and
// the wire learn nothing from it and cannot prove who wrote what; and junk
// is rejected by the AEAD (under a microsecond) before the signature check
// (about 40).
const (
	NonceSize          = chacha20poly1305.NonceSizeX // 24
	PairTagSize        = 8
	TagSize            = chacha20poly1305.Overhead   // 16
	EnvelopeHeaderSize = 1 + NonceSize + PairTagSize // 33
	SignatureSize      = ed25519.SignatureSize       // 64
	MessageIDSize      = 16

	// Padding buckets: L is a power of two from MinPadded to MaxPadded.
	MinPadded = 128
	MaxPadded = 1 << 16

	innerHeaderSize = MessageIDSize + 8 + 1 + 1 + 4 // 30

	// MaxBodySize is the largest message body one envelope carries.
	MaxBodySize = MaxPadded - innerHeaderSize - SignatureSize // 65442

	// MinEnvelopeSize and MaxEnvelopeSize bound a valid envelope.
	MinEnvelopeSize = EnvelopeHeaderSize + MinPadded + TagSize
	MaxEnvelopeSize = EnvelopeHeaderSize + MaxPadded + TagSize

	sigPrefixSize = 1 + 2*KeySize

	// maxAckIDs bounds the ids in one Delivered or Read message.
	maxAckIDs = 1024
)

// MessageType is the kind of a peer message. Receivers hand types they do
// not know to the application as such, which keeps them and shows them as
// an unsupported message ("upgrade wschat"), never drops them silently: new
// types can be added without breaking old peers. A change that old peers
// must not misread takes a new envelope version instead.
type MessageType byte

const (
	// TypeText: body is UTF-8 text.
	TypeText MessageType = 0x01
	// TypeDelivered: the recipient's client stored these messages; body is
	// 1..1024 message ids of 16 bytes.
	TypeDelivered MessageType = 0x02
	// TypeRead: a person saw these messages; body as TypeDelivered.
	TypeRead MessageType = 0x03
	// TypeTyping (ephemeral): body is one byte, 1 typing, 0 stopped.
	TypeTyping MessageType = 0x04
	// TypePresence (ephemeral): body is one byte, 1 online, 0 leaving.
	TypePresence MessageType = 0x05
	// TypeRelayMoved: the sender now receives on another relay; body is
	// that relay's address in canonical form (ParseRelayAddress, at most
	// MaxRelayAddressLen bytes). The recipient sends to the sender there
	// from now on; its keys are unchanged, so trust is unchanged. A
	// notice older (by sent-at) than one already applied is ignored.
	TypeRelayMoved MessageType = 0x06

	// Structured messages (bodies in structured.go). Numbers from 0x10
	// up; the ones below are left for other additions.

	// TypeQuestion: a question, with up to MaxChoices choices.
	TypeQuestion MessageType = 0x10
	// TypeReply: text (or a question's choice) answering a message.
	TypeReply MessageType = 0x11
	// TypeApprovalRequest: an agent asks to use a tool.
	TypeApprovalRequest MessageType = 0x12
	// TypeApprovalAnswer: a person allows or denies one approval request.
	TypeApprovalAnswer MessageType = 0x13
)

// Ephemeral reports whether messages of type t travel in frames marked
// FlagEphemeral (delivered live or not at all).
func (t MessageType) Ephemeral() bool { return t == TypeTyping || t == TypePresence }

// Receipt reports whether messages of type t acknowledge other messages
// (delivered, read): they travel in frames marked FlagReceipt.
func (t MessageType) Receipt() bool { return t == TypeDelivered || t == TypeRead }

// Acknowledged reports whether a receiver that stored a message of type t
// sends the sender a delivered receipt for it: every type it knows that
// is neither a receipt nor ephemeral. (Types it does not know it keeps
// and shows as unsupported, without a receipt.)
func (t MessageType) Acknowledged() bool {
	switch t {
	case TypeText, TypeRelayMoved, TypeQuestion, TypeReply, TypeApprovalRequest, TypeApprovalAnswer:
		return true
	}
	return false
}

func (t MessageType) String() string {
	switch t {
	case TypeText:
		return "text"
	case TypeDelivered:
		return "delivered"
	case TypeRead:
		return "read"
	case TypeTyping:
		return "typing"
	case TypePresence:
		return "presence"
	case TypeRelayMoved:
		return "relay_moved"
	case TypeQuestion:
		return "question"
	case TypeReply:
		return "reply"
	case TypeApprovalRequest:
		return "approval_request"
	case TypeApprovalAnswer:
		return "approval_answer"
	}
	return fmt.Sprintf("type(%#x)", byte(t))
}

// MessageID names a message end to end; receivers deduplicate by it.
type MessageID [MessageIDSize]byte

// NewMessageID reads a random id from rand.
func NewMessageID(rand io.Reader) (MessageID, error) {
	var id MessageID
	_, err := io.ReadFull(rand, id[:])
	return id, err
}

// String is the 32-hex-digit form used in listen --json.
func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// ParseMessageID parses the form String writes.
func ParseMessageID(s string) (MessageID, error) {
	var id MessageID
	if len(s) != 2*MessageIDSize {
		return id, fmt.Errorf("message id %q: want %d hex digits", s, 2*MessageIDSize)
	}
	_, err := hex.Decode(id[:], []byte(s))
	return id, err
}

// Message is a peer message before sealing or after opening.
type Message struct {
	ID     MessageID
	SentAt time.Time // carried with millisecond precision
	Type   MessageType
	Body   []byte
}

// Envelope errors: each tamper has its own, so tests and logs can tell them
// apart. None of them changes any state.
var (
	// ErrEnvelopeSize: not a valid envelope length (truncated, extended, or
	// not a padding bucket).
	ErrEnvelopeSize = errors.New("envelope size is not a padding bucket")
	// ErrEnvelopeVersion: an envelope version this client does not speak.
	ErrEnvelopeVersion = errors.New("unsupported envelope version")
	// ErrWrongPair: the pair tag does not match: the envelope was sealed
	// for another recipient, or by another sender than the relay claims.
	ErrWrongPair = errors.New("envelope is not from this sender to this recipient")
	// ErrReflected: the envelope is one this identity sealed itself, sent
	// back to it.
	ErrReflected = errors.New("envelope is our own, reflected back")
	// ErrDecrypt: the pair tag matched but the ciphertext does not
	// authenticate: it was altered in transit.
	ErrDecrypt = errors.New("envelope does not authenticate")
	// ErrSignature: the inner signature does not verify (including a
	// signature with S+ℓ).
	ErrSignature = errors.New("message signature does not verify")
	// ErrInnerMalformed: the decrypted message breaks a format rule
	// (length, padding, flags, body of a known type).
	ErrInnerMalformed = errors.New("malformed message")
	// ErrBodyTooLarge: Seal was given a body over MaxBodySize.
	ErrBodyTooLarge = errors.New("message body too large")
	// ErrSelfPair: an identity cannot pair with itself.
	ErrSelfPair = errors.New("cannot exchange messages with oneself")
)

// Pair holds the keys between this identity and one peer, derived once:
// a message key and a pair-tag key per direction. Safe for concurrent use.
type Pair struct {
	self *Identity
	peer PublicIdentity

	sendAEAD, recvAEAD cipher.AEAD // static after construction
	sendTag, recvTag   *pairTagger
	sendSig, recvSig   [sigPrefixSize]byte // version ‖ fp sender ‖ fp recipient
}

type pairTagger struct {
	mu sync.Mutex
	h  *blake3.Hasher // guarded by mu
}

func (t *pairTagger) tag(nonce []byte) (tag [PairTagSize]byte) {
	t.mu.Lock()
	t.h.Reset()
	t.h.Write(nonce)
	t.h.Sum(tag[:0])
	t.mu.Unlock()
	return tag
}

// Pair derives the keys for exchanging messages with peer. Callers cache
// the result per peer; it costs one X25519 and four BLAKE3 derivations.
func (id *Identity) Pair(peer PublicIdentity) (*Pair, error) {
	if peer.IsZero() {
		return nil, ErrInvalidKey
	}
	if peer.Equal(id.pub) {
		return nil, ErrSelfPair
	}
	shared, err := id.dh(peer.X[:])
	if err != nil {
		return nil, err
	}
	p := &Pair{self: id, peer: peer}
	me, them := id.pub.Fingerprint(), peer.Fingerprint()
	var sendKey, recvKey, sendTagKey, recvTagKey [KeySize]byte
	deriveDir(sendKey[:], ContextMessageKey, shared, me, them)
	deriveDir(recvKey[:], ContextMessageKey, shared, them, me)
	deriveDir(sendTagKey[:], ContextPairTag, shared, me, them)
	deriveDir(recvTagKey[:], ContextPairTag, shared, them, me)
	if p.sendAEAD, err = chacha20poly1305.NewX(sendKey[:]); err != nil {
		return nil, err
	}
	if p.recvAEAD, err = chacha20poly1305.NewX(recvKey[:]); err != nil {
		return nil, err
	}
	p.sendTag = &pairTagger{h: blake3.New(PairTagSize, sendTagKey[:])}
	p.recvTag = &pairTagger{h: blake3.New(PairTagSize, recvTagKey[:])}
	p.sendSig = sigPrefix(me, them)
	p.recvSig = sigPrefix(them, me)
	return p, nil
}

func deriveDir(out []byte, ctx string, shared []byte, from, to Fingerprint) {
	var m [KeySize * 3]byte
	copy(m[:], shared)
	copy(m[KeySize:], from[:])
	copy(m[2*KeySize:], to[:])
	blake3.DeriveKey(out, ctx, m[:])
}

func sigPrefix(from, to Fingerprint) (p [sigPrefixSize]byte) {
	p[0] = ProtocolVersion
	copy(p[1:], from[:])
	copy(p[1+KeySize:], to[:])
	return p
}

// Peer is the other identity of the pair.
func (p *Pair) Peer() PublicIdentity { return p.peer }

// paddedSize is the padding bucket for a body of n bytes.
func paddedSize(n int) int {
	need := innerHeaderSize + n + SignatureSize
	l := MinPadded
	for l < need {
		l <<= 1
	}
	return l
}

// EnvelopeSize is the size of the envelope Seal makes for a body of n
// bytes (n ≤ MaxBodySize).
func EnvelopeSize(n int) int { return EnvelopeHeaderSize + paddedSize(n) + TagSize }

// scratch holds sigPrefixSize + MaxPadded bytes: the signed bytes of one
// message, laid out so that the inner plaintext follows the signature
// prefix.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, sigPrefixSize+MaxPadded); return &b }}

// Seal appends to dst the envelope of m from this identity to the peer.
// Nonce bytes come from rand (crypto/rand.Reader outside tests).
func (p *Pair) Seal(dst []byte, m *Message, rand io.Reader) ([]byte, error) {
	if len(m.Body) > MaxBodySize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBodyTooLarge, len(m.Body), MaxBodySize)
	}
	if err := checkBody(m.Type, m.Body); err != nil {
		return nil, err
	}
	if ms := m.SentAt.UnixMilli(); ms <= 0 || ms > 1<<53 {
		return nil, fmt.Errorf("%w: sent-at time before 1970", ErrInnerMalformed)
	}
	l := paddedSize(len(m.Body))
	sp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(sp)
	s := (*sp)[:sigPrefixSize+l]
	copy(s, p.sendSig[:])
	in := s[sigPrefixSize:]
	putInner(in, m)
	sig, err := p.self.ed.Sign(nil, s[:sigPrefixSize+l-SignatureSize], messageSigOpts)
	if err != nil {
		return nil, err
	}
	copy(in[l-SignatureSize:], sig)

	start := len(dst)
	dst = append(dst, ProtocolVersion)
	dst = append(dst, make([]byte, NonceSize)...)
	nonce := dst[start+1 : start+1+NonceSize]
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	tag := p.sendTag.tag(nonce)
	dst = append(dst, tag[:]...)
	hdr := dst[start : start+EnvelopeHeaderSize]
	return p.sendAEAD.Seal(dst, nonce, in, hdr), nil
}

// From reports whether env carries the pair tag of the peer's envelopes
// to this identity: whether the peer sealed it for us (if it opens). A
// receiver uses it to find the sender of a frame whose header does not
// name one (UnnamedID): one keyed hash per contact, no decryption.
func (p *Pair) From(env []byte) bool {
	if len(env) < EnvelopeHeaderSize {
		return false
	}
	nonce := env[1 : 1+NonceSize]
	want := p.recvTag.tag(nonce)
	return subtle.ConstantTimeCompare(env[1+NonceSize:EnvelopeHeaderSize], want[:]) == 1
}

// Open authenticates and decrypts an envelope the relay says came from the
// peer. It changes no state: replay checks come after, in a ReplayGuard.
// Checks run cheapest first: size, version, pair tag, AEAD, signature,
// inner format.
func (p *Pair) Open(env []byte) (*Message, error) {
	if len(env) < MinEnvelopeSize || len(env) > MaxEnvelopeSize {
		return nil, ErrEnvelopeSize
	}
	l := len(env) - EnvelopeHeaderSize - TagSize
	if l&(l-1) != 0 {
		return nil, ErrEnvelopeSize
	}
	if env[0] != ProtocolVersion {
		return nil, fmt.Errorf("%w: %d", ErrEnvelopeVersion, env[0])
	}
	nonce := env[1 : 1+NonceSize]
	got := env[1+NonceSize : EnvelopeHeaderSize]
	want := p.recvTag.tag(nonce)
	if subtle.ConstantTimeCompare(got, want[:]) != 1 {
		if own := p.sendTag.tag(nonce); subtle.ConstantTimeCompare(got, own[:]) == 1 {
			return nil, ErrReflected
		}
		return nil, ErrWrongPair
	}
	sp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(sp)
	s := (*sp)[:sigPrefixSize]
	copy(s, p.recvSig[:])
	s, err := p.recvAEAD.Open(s, nonce, env[EnvelopeHeaderSize:], env[:EnvelopeHeaderSize])
	if err != nil {
		return nil, ErrDecrypt
	}
	in := s[sigPrefixSize:]
	if ed25519.VerifyWithOptions(p.peer.Ed[:], s[:len(s)-SignatureSize], in[l-SignatureSize:], messageSigOpts) != nil {
		return nil, ErrSignature
	}
	return parseInner(in)
}

// putInner lays out m in the inner plaintext in, whose length is the
// padding bucket, leaving the last SignatureSize bytes for the signature.
func putInner(in []byte, m *Message) {
	copy(in, m.ID[:])
	binary.LittleEndian.PutUint64(in[16:], uint64(m.SentAt.UnixMilli()))
	in[24] = byte(m.Type)
	in[25] = 0
	binary.LittleEndian.PutUint32(in[26:], uint32(len(m.Body)))
	n := copy(in[innerHeaderSize:], m.Body)
	clear(in[innerHeaderSize+n : len(in)-SignatureSize])
}

// parseInner decodes an inner plaintext strictly; putInner of the result
// gives back the same bytes (but the signature).
func parseInner(in []byte) (*Message, error) {
	l := len(in)
	m := &Message{Type: MessageType(in[24])}
	copy(m.ID[:], in)
	ms := binary.LittleEndian.Uint64(in[16:])
	if ms == 0 || ms > 1<<53 {
		return nil, fmt.Errorf("%w: sent-at %d", ErrInnerMalformed, ms)
	}
	m.SentAt = time.UnixMilli(int64(ms))
	if in[25] != 0 {
		return nil, fmt.Errorf("%w: inner flags %#x", ErrInnerMalformed, in[25])
	}
	n := binary.LittleEndian.Uint32(in[26:])
	if uint64(n) > uint64(l-innerHeaderSize-SignatureSize) || paddedSize(int(n)) != l {
		return nil, fmt.Errorf("%w: body length %d in a %d-byte bucket", ErrInnerMalformed, n, l)
	}
	for _, b := range in[innerHeaderSize+int(n) : l-SignatureSize] {
		if b != 0 {
			return nil, fmt.Errorf("%w: padding is not zero", ErrInnerMalformed)
		}
	}
	m.Body = append([]byte(nil), in[innerHeaderSize:innerHeaderSize+int(n)]...)
	if err := checkBody(m.Type, m.Body); err != nil {
		return nil, err
	}
	return m, nil
}

// checkBody enforces the body rules of the known types.
func checkBody(t MessageType, b []byte) error {
	switch t {
	case TypeText:
		if !utf8.Valid(b) {
			return fmt.Errorf("%w: text is not UTF-8", ErrInnerMalformed)
		}
	case TypeDelivered, TypeRead:
		if len(b) == 0 || len(b)%MessageIDSize != 0 || len(b) > maxAckIDs*MessageIDSize {
			return fmt.Errorf("%w: %s body of %d bytes", ErrInnerMalformed, t, len(b))
		}
	case TypeTyping, TypePresence:
		if len(b) != 1 || b[0] > 1 {
			return fmt.Errorf("%w: %s body", ErrInnerMalformed, t)
		}
	case TypeRelayMoved:
		if a, err := ParseRelayAddress(string(b)); err != nil || a.String() != string(b) {
			return fmt.Errorf("%w: relay_moved body is not a canonical relay address", ErrInnerMalformed)
		}
	default:
		return checkStructured(t, b)
	}
	return nil
}

// AckIDs splits the body of a TypeDelivered or TypeRead message.
func AckIDs(body []byte) []MessageID {
	ids := make([]MessageID, len(body)/MessageIDSize)
	for i := range ids {
		copy(ids[i][:], body[i*MessageIDSize:])
	}
	return ids
}

// AckBody joins message ids into a TypeDelivered or TypeRead body.
func AckBody(ids ...MessageID) []byte {
	b := make([]byte, 0, len(ids)*MessageIDSize)
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}
