// Registration and login with the key in the page, as the SDK does them (identity::messages):
// each signed text names this deployment (chain id and marketplace), this origin and the
// broker's did, so it cannot be replayed at another broker.
import { ApiError, request, type Schemas } from "./api/client";
import { sign, type Key } from "./keys";

type Role = Schemas["Role"];

async function deployment(): Promise<{ audience: string; brokerDid: string }> {
  const ledger = await request<Schemas["LedgerStatus"]>("GET", "/v1/ledger");
  return {
    audience: `mercato:${ledger.chainId}:${ledger.contracts.marketplace.toLowerCase()}`,
    brokerDid: ledger.brokerDid,
  };
}

export async function register(key: Key, role: Role): Promise<Schemas["Registered"]> {
  const { audience, brokerDid } = await deployment();
  const issuedAt = Math.floor(Date.now() / 1000);
  const message = `audience: ${audience}\nbroker: ${window.location.origin}\nbroker-did: ${brokerDid}\ndid: ${key.did}\nrole: ${role}\nissued: ${issuedAt}`;
  return request("POST", "/v1/participants", {
    body: { did: key.did, role, issuedAt, signature: sign(key, "mercato-register/1", message) },
  });
}

export async function login(key: Key): Promise<Schemas["Token"]> {
  const challenge = await request<Schemas["Challenge"]>("POST", "/v1/auth/challenge", { body: { did: key.did } });
  const now = Math.floor(Date.now() / 1000);
  if (!/^[0-9a-f]{64}$/.test(challenge.nonce) || challenge.expiresAt <= now || challenge.expiresAt > now + 600)
    throw new ApiError(0, "the broker's login challenge is not a fresh nonce with a near expiry; it is not signed");
  const { audience, brokerDid } = await deployment();
  const message = `audience: ${audience}\nbroker: ${window.location.origin}\nbroker-did: ${brokerDid}\ndid: ${key.did}\nnonce: ${challenge.nonce}\nexpires: ${challenge.expiresAt}`;
  return request("POST", "/v1/auth/token", {
    body: { did: key.did, nonce: challenge.nonce, signature: sign(key, "mercato-login/1", message) },
  });
}

let current: { did: string; token: string; role: Role; expiresAt: number } | null = null;

/** The token of the key in this page, logging in when there is none or it is about to expire. */
export async function session(key: Key): Promise<{ token: string; role: Role }> {
  const now = Math.floor(Date.now() / 1000);
  if (!current || current.did !== key.did || current.expiresAt < now + 30) {
    const t = await login(key);
    current = { did: key.did, token: t.token, role: t.role, expiresAt: t.expiresAt };
  }
  return current;
}

export function forgetSession() {
  current = null;
}

/** A call as the key's participant (logged in here). */
export async function call<T>(
  key: Key,
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string>; raw?: boolean; signal?: AbortSignal } = {},
): Promise<T> {
  const { token } = await session(key);
  return request<T>(method, path, { ...options, token });
}

export const ledger = () => request<Schemas["LedgerStatus"]>("GET", "/v1/ledger");
