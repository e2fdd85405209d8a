// The participant's Ed25519 key, in the browser: created here or imported from a CLI key file
// (64 hex characters), never sent anywhere. It is kept in this tab's sessionStorage, so closing
// the tab forgets it; "Forget" does so at once. Messages are signed as the broker checks them:
// the domain's tag, a newline, the message (identity::Domain).
import { ed25519 } from "@noble/curves/ed25519.js";
import { base58 } from "@scure/base";

const STORAGE = "mercato.key";

export type Domain = "mercato-login/1" | "mercato-register/1" | "mercato-contract-document/1" | "mercato-offer/1";

export interface Key {
  secret: Uint8Array;
  did: string;
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text: string): Uint8Array | null {
  if (!/^[0-9a-fA-F]*$/.test(text) || text.length % 2) return null;
  return Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** The did:key of a public key: multicodec ed25519-pub (0xed 0x01), base58btc. */
export function didOf(publicKey: Uint8Array): string {
  return `did:key:z${base58.encode(Uint8Array.of(0xed, 0x01, ...publicKey))}`;
}

function keyOf(secret: Uint8Array): Key {
  return { secret, did: didOf(ed25519.getPublicKey(secret)) };
}

export function createKey(): Key {
  return keyOf(ed25519.utils.randomSecretKey());
}

/** A CLI key file's text, or why it is not one. */
export function parseKeyFile(text: string): { ok: true; key: Key } | { ok: false; error: string } {
  const secret = fromHex(text.trim());
  if (!secret || secret.length !== 32)
    return { ok: false, error: "This is not a Mercato key file: it holds 64 hex characters (the CLI's key.hex)." };
  return { ok: true, key: keyOf(secret) };
}

/** The key file the CLI reads (`mercato --key-file`). */
export function keyFileText(key: Key): string {
  return toHex(key.secret);
}

export function sign(key: Key, domain: Domain, message: string): string {
  const bytes = new TextEncoder().encode(`${domain}\n${message}`);
  return toHex(ed25519.sign(bytes, key.secret));
}

export function storedKey(): Key | null {
  const text = sessionStorage.getItem(STORAGE);
  if (!text) return null;
  const parsed = parseKeyFile(text);
  return parsed.ok ? parsed.key : null;
}

export function keepKey(key: Key) {
  sessionStorage.setItem(STORAGE, keyFileText(key));
}

export function forgetKey() {
  sessionStorage.removeItem(STORAGE);
}
