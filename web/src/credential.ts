// Opening a peering credential sealed to this page's did key (peering::seal): X25519 of the
// converted key with the sender's ephemeral key, HKDF-SHA256 (salt: ephemeral ‖ recipient),
// ChaCha20-Poly1305; inside, the credential must be signed by the broker this page talks to.
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { base58 } from "@scure/base";
import type { Schemas } from "./api/client";
import { fromHex, type Key } from "./keys";

const INFO = new TextEncoder().encode("mercato peering credential v1");

/** The credential's JSON (what `mercato credentials get` writes), or an error saying why not. */
export function openCredential(key: Key, sealed: Schemas["SealedCredential"], brokerDid: string): string {
  if (sealed.recipient !== key.did) throw new Error(`the credential is sealed to ${sealed.recipient}, not to this key`);
  const eph = fromHex(sealed.ephemeral);
  const nonce = fromHex(sealed.nonce);
  const ciphertext = fromHex(sealed.ciphertext);
  if (!eph || eph.length !== 32 || !nonce || nonce.length !== 12 || !ciphertext)
    throw new Error("the sealed credential is malformed");
  const secret = ed25519.utils.toMontgomerySecret(key.secret);
  const recipient = x25519.getPublicKey(secret);
  const shared = x25519.getSharedSecret(secret, eph);
  const aead = hkdf(sha256, shared, Uint8Array.of(...eph, ...recipient), INFO, 32);
  let plain: Uint8Array;
  try {
    plain = chacha20poly1305(aead, nonce).decrypt(ciphertext);
  } catch {
    throw new Error("the sealed credential was tampered with or is not for this key");
  }
  const signed = JSON.parse(new TextDecoder().decode(plain)) as { credential: string; issuer: string; signature: string };
  const issuerKey = brokerDid.startsWith("did:key:z") ? base58.decode(brokerDid.slice(9)).slice(2) : null;
  const signature = fromHex(signed.signature);
  const message = new TextEncoder().encode(`mercato-envelope/1\n${signed.credential}`);
  if (signed.issuer !== brokerDid || !issuerKey || !signature || !ed25519.verify(signature, message, issuerKey))
    throw new Error(`the credential is not signed by this broker (${brokerDid})`);
  return signed.credential;
}
