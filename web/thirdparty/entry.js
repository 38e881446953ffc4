// What the web app takes from its third-party code. The bundle tool
// (web/thirdparty/bundle) bundles exactly these names, tree-shaken but not
// minified, into web/app/vendor/vendor.js.
//
// Ed25519ctx (RFC 8032) is the protocol's signature; WebCrypto has only
// pure Ed25519, so noble-curves signs and verifies. X25519, BLAKE3,
// BLAKE2s (Noise's hash), ChaCha20 (header blinding), ChaCha20-Poly1305
// (Noise and relay commands) and XChaCha20-Poly1305 (envelopes) come from
// noble too: WebCrypto lacks BLAKE3, BLAKE2s and XChaCha20 in every
// browser, and ChaCha20-Poly1305 in most.
export { ed25519, ed25519ctx, x25519 } from '@noble/curves/ed25519.js';
export { blake3 } from '@noble/hashes/blake3.js';
export { blake2s } from '@noble/hashes/blake2.js';
export { hmac } from '@noble/hashes/hmac.js';
export { chacha20, chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
export { qrcode } from 'qrcode-generator';
