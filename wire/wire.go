// Package wire is the wschat wire format: identities and their keys, the
// relay handshake, frames and their blinded routing header, relay commands,
// and end-to-end encrypted peer messages. Both the client library (bridge)
// and the relay (relayd) import it; it imports neither. PROTOCOL.md is the
// prose twin of this file; golden vectors in testdata/ keep the two honest.
//
// # Protocol flow
//
//	client                                         relay
//	  | ---- WebSocket upgrade (binary messages only) ---> |
//	  | <--- Hello:  type=1 ver e_r ------------------------ |  relay ephemeral
//	  | ---- Auth:   type=2 ver e_c, enc(s_c), enc(payload) > |  Noise KX msg 2;
//	  |              payload = flags ‖ ed_pub ‖ sig(e_r ...)   |  relay checks keys
//	  | <--- frame 0: relay command Welcome ---------------- |  proves the relay
//	  | ---- data frames (may follow Auth at once) ---------> |  holds its key
//	  | <--- Custody for each data frame ------------------- |
//	  | <--- data frames from peers (receiving connections) - |
//	  | ---- Ack (relay may delete its stored copy) -------> |
//	  | <--> Ping / Pong keepalive -------------------------- |
//	  | <--- Restarting (reconnect after N ms) ------------- |
//
// Every message after the handshake is one frame:
//
//	header [8]  routing id XOR mask   (to the relay: recipient; from it: sender,
//	            or UnnamedID for a frame the relay had stored)
//	flags  [1]  FlagEphemeral, FlagReceipt; other bits zero (also XORed with the mask)
//	body   [..] peer envelope (opaque to the relay) or sealed relay command
//
// # Version history
//
//	1  (2026-11) first version. Descends from tele's protocol 2 and is not
//	   compatible with it: Noise KX relay handshake with a fresh relay
//	   ephemeral (tele's handshake was replayable and sent the client key in
//	   clear), per-connection blinding keys, authenticated relay commands,
//	   per-direction BLAKE3-derived message keys bound to both fingerprints,
//	   signature inside the ciphertext, message ids, padding buckets.
//	1  (2026-12) additions only: message type TypeRelayMoved; the
//	   subprotocol name here (Subprotocol); OpError and four reasons
//	   reserved, three relay-local.
package wire

import "crypto/ed25519"

// ProtocolVersion is the version spoken in the handshake and written in
// every peer envelope. A receiver refuses any other version (no downgrade).
const ProtocolVersion = 1

// Subprotocol is the WebSocket subprotocol of protocol version 1: the
// client offers it, the relay accepts only it (PROTOCOL.md §3).
const Subprotocol = "wschat.v1"

// BLAKE3 derive_key contexts. Each names the protocol version, so a future
// version derives unrelated keys from the same material.
const (
	// ContextFingerprint: fingerprint = derive_key(ctx, x_pub ‖ ed_pub).
	ContextFingerprint = "wschat v1 2026-11 identity fingerprint"
	// ContextMessageKey: per-direction AEAD key of a pair of identities,
	// derive_key(ctx, X25519(a, B) ‖ fp(sender) ‖ fp(recipient)).
	ContextMessageKey = "wschat v1 2026-11 message key"
	// ContextPairTag: per-direction key of the pair tag, same material.
	ContextPairTag = "wschat v1 2026-11 pair tag"
	// ContextBlind: header-blinding key of one direction of a connection,
	// derive_key(ctx, noise transport key of that direction).
	ContextBlind = "wschat v1 2026-11 header blinding"
	// ContextCommand: relay-command AEAD key of one direction of a
	// connection, derive_key(ctx, noise transport key of that direction).
	ContextCommand = "wschat v1 2026-11 relay command"
	// ContextSafetyNumber: safety number of two identities,
	// derive_key(ctx, lower fp ‖ higher fp).
	ContextSafetyNumber = "wschat v1 2026-11 safety number"
)

// Ed25519ctx (RFC 8032) context strings; a signature made for one purpose
// never verifies for another.
const (
	// SigContextMessage: the signature inside every peer message.
	SigContextMessage = "wschat v1 message"
	// SigContextRelayAuth: the client's signature in the handshake.
	SigContextRelayAuth = "wschat v1 relay auth"
)

var (
	messageSigOpts   = &ed25519.Options{Context: SigContextMessage}
	relayAuthSigOpts = &ed25519.Options{Context: SigContextRelayAuth}
)
