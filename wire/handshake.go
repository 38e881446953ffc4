package wire

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"

	"github.com/flynn/noise"
)

// Handshake message types: the first byte of each of the two handshake
// messages, which are the first two WebSocket messages of a connection.
const (
	// MsgHello is the relay's first message, sent as soon as the WebSocket
	// is open:
	//
	//	0  1   MsgHello
	//	1  1   highest protocol version the relay speaks
	//	2  32  relay ephemeral X25519 public key (Noise KX message 1, "e")
	MsgHello byte = 0x01

	// MsgAuth is the client's answer (Noise KX message 2):
	//
	//	0   1   MsgAuth
	//	1   1   protocol version chosen by the client
	//	2   32  client ephemeral X25519 public key ("e"); then ee, se
	//	34  48  client identity X25519 key, encrypted ("s", 32 + 16 tag); then es
	//	82  113 encrypted AuthPayload (97 + 16 tag)
	MsgAuth byte = 0x02
)

// Handshake sizes.
const (
	HelloSize       = 2 + KeySize                                       // 34
	authPayloadSize = 1 + KeySize + ed25519.SignatureSize               // 97
	AuthSize        = 2 + KeySize + KeySize + 16 + authPayloadSize + 16 // 195
)

// Connection flags, sent by the client inside the encrypted AuthPayload:
//
//	0  1   flags
//	1  32  client Ed25519 public key
//	33 64  Ed25519ctx(SigContextRelayAuth) signature over
//	       version ‖ relay static key ‖ relay ephemeral key ‖ client X25519 key
//	       ‖ client Ed25519 key ‖ flags
//
// The relay's ephemeral key is fresh for every connection, so the signature
// doubles as the answer to a relay-chosen challenge: a recorded Auth replayed
// on a new connection fails (its Noise keys no longer match, and its
// signature names another ephemeral key).
const (
	// ConnReceive marks a connection that receives the identity's incoming
	// frames. Without it the connection only sends (a cron job's one-shot
	// send) and the relay never routes anyone's frames to it.
	ConnReceive byte = 1 << 0

	connFlagsKnown = ConnReceive
)

// noisePrologue binds the handshake to wschat and to its two-byte Hello
// header (type and version).
const noisePrologue = "wschat relay handshake"

// newNoiseSuite returns Noise_KX_25519_ChaChaPoly_BLAKE2s for one
// handshake. Its 25519 function is the one Noise specifies, computed with
// crypto/ecdh on keys parsed once: crypto/ecdh derives the public key when
// it parses a private key, so parsing per DH (as the x/crypto path
// flynn/noise uses does) doubles the cost of every DH.
func newNoiseSuite(static *ecdh.PrivateKey) noise.CipherSuite {
	dh := &ecdh25519{keys: make(map[string]*ecdh.PrivateKey, 2)}
	if static != nil {
		dh.keys[string(static.Bytes())] = static
	}
	return noise.NewCipherSuite(dh, noise.CipherChaChaPoly, noise.HashBLAKE2s)
}

// ecdh25519 is noise.DHFunc over crypto/ecdh. Used by one handshake, on
// one goroutine.
type ecdh25519 struct {
	keys map[string]*ecdh.PrivateKey // parsed private keys, by their bytes
}

func (d *ecdh25519) GenerateKeypair(rng io.Reader) (noise.DHKey, error) {
	priv := make([]byte, KeySize)
	if _, err := io.ReadFull(rng, priv); err != nil {
		return noise.DHKey{}, err
	}
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return noise.DHKey{}, err
	}
	d.keys[string(priv)] = k
	return noise.DHKey{Private: priv, Public: k.PublicKey().Bytes()}, nil
}

func (d *ecdh25519) DH(priv, pub []byte) ([]byte, error) {
	k, ok := d.keys[string(priv)]
	if !ok {
		var err error
		if k, err = ecdh.X25519().NewPrivateKey(priv); err != nil {
			return nil, err
		}
		d.keys[string(priv)] = k
	}
	return x25519(k, pub)
}

func (*ecdh25519) DHLen() int     { return KeySize }
func (*ecdh25519) DHName() string { return "25519" }

// Handshake errors.
var (
	// ErrHandshakeMalformed: a handshake message has the wrong type or size.
	ErrHandshakeMalformed = errors.New("malformed handshake message")
	// ErrHandshakeVersion: no protocol version both sides speak.
	ErrHandshakeVersion = errors.New("unsupported protocol version")
	// ErrHandshakeDecrypt: the Noise message does not decrypt: the client
	// pinned another relay key, or the message was replayed or altered.
	ErrHandshakeDecrypt = errors.New("handshake does not decrypt (relay key mismatch, replay or tampering)")
	// ErrHandshakeSignature: the client's signature does not verify.
	ErrHandshakeSignature = errors.New("handshake signature does not verify")
	// ErrHandshakeFlags: unknown connection flags.
	ErrHandshakeFlags = errors.New("unknown connection flags")
)

// Session is one side of an authenticated connection: the frame streams in
// each direction. Send is owned by the connection's writer, Recv by its
// reader.
type Session struct {
	Send *Framer
	Recv *Framer
}

// RelayHandshake is the relay's side of one connection's handshake.
type RelayHandshake struct {
	relay *RelayIdentity
	hs    *noise.HandshakeState
	hello [HelloSize]byte
}

// AuthResult is what the relay learns from a client's Auth.
type AuthResult struct {
	Peer    PublicIdentity // the client's identity, keys validated
	Receive bool           // ConnReceive was set
	Session Session
}

// NewRelayHandshake starts a handshake: it makes the relay's ephemeral key
// from rand and returns the Hello message to send.
func NewRelayHandshake(r *RelayIdentity, rand io.Reader) (*RelayHandshake, []byte, error) {
	h := &RelayHandshake{relay: r}
	h.hello[0] = MsgHello
	h.hello[1] = ProtocolVersion
	pub := r.pub
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   newNoiseSuite(r.priv),
		Random:        rand,
		Pattern:       noise.HandshakeKX,
		Initiator:     true,
		Prologue:      prologue(h.hello[:2]),
		StaticKeypair: noise.DHKey{Private: r.priv.Bytes(), Public: pub[:]},
	})
	if err != nil {
		return nil, nil, err
	}
	msg, _, _, err := hs.WriteMessage(h.hello[:2], nil)
	if err != nil {
		return nil, nil, fmt.Errorf("relay handshake: %w", err)
	}
	copy(h.hello[:], msg)
	h.hs = hs
	return h, append([]byte(nil), h.hello[:]...), nil
}

func prologue(hdr []byte) []byte {
	return append([]byte(noisePrologue), hdr...)
}

// Finish reads the client's Auth message. Everything in it is hostile until
// this returns nil: sizes are checked first, then the Noise decryption, then
// both keys, then the signature.
func (h *RelayHandshake) Finish(auth []byte) (*AuthResult, error) {
	if len(auth) != AuthSize || auth[0] != MsgAuth {
		return nil, ErrHandshakeMalformed
	}
	if auth[1] != ProtocolVersion {
		return nil, fmt.Errorf("%w: client speaks %d, relay %d", ErrHandshakeVersion, auth[1], ProtocolVersion)
	}
	var payload [authPayloadSize]byte
	// KX: the first CipherState encrypts initiator (relay) -> responder.
	pl, r2c, c2r, err := h.hs.ReadMessage(payload[:0], auth[2:])
	if err != nil || r2c == nil || len(pl) != authPayloadSize {
		// A low-order key fails a DH; report it as such rather than as a
		// decryption failure. (The static key is decrypted before the last
		// DH, so it is known here.)
		if err := CheckX25519Public(auth[2 : 2+KeySize]); err != nil {
			return nil, fmt.Errorf("client ephemeral key: %w", err)
		}
		if rs := h.hs.PeerStatic(); len(rs) == KeySize {
			if kerr := CheckX25519Public(rs); kerr != nil {
				return nil, fmt.Errorf("client key: %w", kerr)
			}
		}
		return nil, ErrHandshakeDecrypt
	}
	flags := pl[0]
	if flags&^connFlagsKnown != 0 {
		return nil, ErrHandshakeFlags
	}
	peer, err := NewPublicIdentity(h.hs.PeerStatic(), pl[1:1+KeySize])
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	msg := authSigned(auth[1], h.relay.pub, h.hello[2:], peer, flags)
	if err := ed25519.VerifyWithOptions(peer.Ed[:], msg[:], pl[1+KeySize:], relayAuthSigOpts); err != nil {
		return nil, ErrHandshakeSignature
	}
	return &AuthResult{
		Peer:    peer,
		Receive: flags&ConnReceive != 0,
		Session: Session{Send: newFramer(r2c.UnsafeKey()), Recv: newFramer(c2r.UnsafeKey())},
	}, nil
}

// authSigned is the message the client signs in its Auth payload.
func authSigned(version byte, relay RelayKey, relayEphemeral []byte, peer PublicIdentity, flags byte) [1 + 4*KeySize + 1]byte {
	var m [1 + 4*KeySize + 1]byte
	m[0] = version
	copy(m[1:], relay[:])
	copy(m[1+KeySize:], relayEphemeral)
	copy(m[1+2*KeySize:], peer.X[:])
	copy(m[1+3*KeySize:], peer.Ed[:])
	m[1+4*KeySize] = flags
	return m
}

// ClientHandshake answers a relay's Hello. The relay key is pinned: a relay
// that does not hold its private half cannot read the Auth message, and the
// first frame it sends (Welcome) cannot authenticate.
//
// It returns the Auth message and the session. The client may send frames
// right after Auth; it must not trust any relay command before the Welcome
// command has opened with Session.Recv.
func ClientHandshake(id *Identity, relay RelayKey, flags byte, hello []byte, rand io.Reader) ([]byte, *Session, error) {
	if flags&^connFlagsKnown != 0 {
		return nil, nil, ErrHandshakeFlags
	}
	if len(hello) != HelloSize || hello[0] != MsgHello {
		return nil, nil, ErrHandshakeMalformed
	}
	// A newer relay offers its highest version; the client answers with its
	// own, and the prologue binds what the relay offered.
	if hello[1] < ProtocolVersion {
		return nil, nil, fmt.Errorf("%w: relay speaks %d, client %d", ErrHandshakeVersion, hello[1], ProtocolVersion)
	}
	if err := CheckX25519Public(hello[2:]); err != nil {
		return nil, nil, fmt.Errorf("relay ephemeral key: %w", err)
	}
	var payload [authPayloadSize]byte
	payload[0] = flags
	copy(payload[1:], id.pub.Ed[:])
	msg := authSigned(ProtocolVersion, relay, hello[2:], id.pub, flags)
	sig, err := id.ed.Sign(nil, msg[:], relayAuthSigOpts)
	if err != nil {
		return nil, nil, err
	}
	copy(payload[1+KeySize:], sig)
	static := noise.DHKey{Private: id.x.Bytes(), Public: id.pub.X[:]}
	return clientAuth(static, relay, hello, payload[:], rand, id.x)
}

// clientAuth writes Noise KX message 2 with the given static key and
// payload. Tests call it directly to forge hostile Auth messages.
func clientAuth(static noise.DHKey, relay RelayKey, hello, payload []byte, rand io.Reader, parsed *ecdh.PrivateKey) ([]byte, *Session, error) {
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   newNoiseSuite(parsed),
		Random:        rand,
		Pattern:       noise.HandshakeKX,
		Initiator:     false,
		Prologue:      prologue(hello[:2]),
		StaticKeypair: static,
		PeerStatic:    relay[:],
	})
	if err != nil {
		return nil, nil, err
	}
	if _, _, _, err := hs.ReadMessage(nil, hello[2:]); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrHandshakeMalformed, err)
	}
	out := make([]byte, 2, AuthSize)
	out[0], out[1] = MsgAuth, ProtocolVersion
	out, r2c, c2r, err := hs.WriteMessage(out, payload)
	if err != nil {
		return nil, nil, fmt.Errorf("client handshake: %w", err)
	}
	return out, &Session{Send: newFramer(c2r.UnsafeKey()), Recv: newFramer(r2c.UnsafeKey())}, nil
}
