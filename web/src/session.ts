// Registration and login with the key in the page, as the SDK does them (identity::messages):
// each signed text names this deployment (chain id and marketplace), this origin and the
// broker's did, so it cannot be replayed at another broker.
import { ApiError, type Schemas } from "./api/client";
import { sign, type Key } from "./keys";

type Role = Schemas["Role"];

async function call<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: {
        accept: "application/json",
        ...(body ? { "content-type": "application/json" } : {}),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new ApiError(0, "the broker does not answer; check that it runs, then try again");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const p = (await response.json()) as Schemas["Problem"];
      detail = p.detail ?? detail;
    } catch {
      // The status says enough.
    }
    throw new ApiError(response.status, detail);
  }
  return (await response.json()) as T;
}

async function deployment(): Promise<{ audience: string; brokerDid: string }> {
  const ledger = await call<Schemas["LedgerStatus"]>("GET", "/v1/ledger");
  return {
    audience: `mercato:${ledger.chainId}:${ledger.contracts.marketplace.toLowerCase()}`,
    brokerDid: ledger.brokerDid,
  };
}

export async function register(key: Key, role: Role): Promise<Schemas["Registered"]> {
  const { audience, brokerDid } = await deployment();
  const issuedAt = Math.floor(Date.now() / 1000);
  const message = `audience: ${audience}\nbroker: ${window.location.origin}\nbroker-did: ${brokerDid}\ndid: ${key.did}\nrole: ${role}\nissued: ${issuedAt}`;
  return call("POST", "/v1/participants", {
    did: key.did,
    role,
    issuedAt,
    signature: sign(key, "mercato-register/1", message),
  });
}

export async function login(key: Key): Promise<Schemas["Token"]> {
  const challenge = await call<Schemas["Challenge"]>("POST", "/v1/auth/challenge", { did: key.did });
  const now = Math.floor(Date.now() / 1000);
  if (!/^[0-9a-f]{64}$/.test(challenge.nonce) || challenge.expiresAt <= now || challenge.expiresAt > now + 600)
    throw new ApiError(0, "the broker's login challenge is not a fresh nonce with a near expiry; it is not signed");
  const { audience, brokerDid } = await deployment();
  const message = `audience: ${audience}\nbroker: ${window.location.origin}\nbroker-did: ${brokerDid}\ndid: ${key.did}\nnonce: ${challenge.nonce}\nexpires: ${challenge.expiresAt}`;
  return call("POST", "/v1/auth/token", {
    did: key.did,
    nonce: challenge.nonce,
    signature: sign(key, "mercato-login/1", message),
  });
}
