// Buying from the page as the SDK does it: reserve, check what the broker offers for signing
// against what was asked, the offer, this participant and the chain, then sign (the document with
// the did key, the terms with the EVM key) and buy with an idempotency key kept per reservation,
// so a retry after a lost answer never buys twice.
import { keccak256, toHex } from "viem";
import { sha256 } from "@noble/hashes/sha2.js";
import { base32nopad } from "@scure/base";
import { request, type Schemas } from "./api/client";
import { sign, type Key } from "./keys";
import { signPurchase, type EvmKey } from "./evm";
import { call, ledger } from "./session";

export type ReserveRequest = Schemas["ReserveRequest"];
export type Reservation = Schemas["Reservation"];
type Contract = Schemas["Contract"];

/** How far the document's issue time may be from this clock, and the longest purchase window. */
const ISSUE_SKEW = 300;
const MAX_WINDOW = 24 * 3600;
/** The content store's chunk: a document up to this size is one raw block. */
const CHUNK = 256 * 1024;

/** The CID the content store gives these bytes (CIDv1, raw, sha2-256, base32), for one chunk. */
export function rawCid(bytes: Uint8Array): string | null {
  if (bytes.length > CHUNK) return null;
  const cid = Uint8Array.of(0x01, 0x55, 0x12, 0x20, ...sha256(bytes));
  return `b${base32nopad.encode(cid).toLowerCase()}`;
}

interface Document {
  kind: string;
  contractId: string;
  chainId: number;
  marketplace: string;
  consumer: { did: string; account: string };
  provider: { did: string; account: string };
  offerId: string;
  offerVersion: number;
  plan: unknown;
  quantity: number;
  price: { model: string; periodPrice: string; periodSeconds: number; periods: number };
  deposit: string;
  usage?: { prices: Schemas["UsagePrices"]; cap: string; windowSeconds: number };
  issuedAt: number;
}

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** Every way the reservation differs from what was asked and what the chain says; none: sign. */
export async function checkReservation(
  key: Key,
  evm: EvmKey,
  asked: ReserveRequest,
  r: Reservation,
): Promise<string[]> {
  const faults: string[] = [];
  const expect = (what: string, ok: boolean) => {
    if (!ok) faults.push(what);
  };
  let doc: Document;
  try {
    doc = JSON.parse(r.document) as Document;
  } catch {
    return ["the document is not a contract document"];
  }
  const [chain, offer, mine] = await Promise.all([
    ledger(),
    request<Schemas["OfferDocument"]>("GET", `/v1/offers/${encodeURIComponent(asked.offerId)}`),
    call<Schemas["AccountInfo"]>(key, "GET", `/v1/accounts/${evm.address}`),
  ]);
  const providerAccount = await call<Schemas["AccountInfo"]>(key, "GET", `/v1/accounts/${r.terms.provider}`);
  const t = r.terms;
  const bytes = new TextEncoder().encode(r.document);
  const plan = offer.offer.plans.find((p) => p.id === asked.planId);
  expect("the document's kind", doc.kind === "mercato.contract/v1");
  expect("the contract id", same(doc.contractId, t.contractId));
  expect("the chain", doc.chainId === chain.chainId && t.chainId === chain.chainId);
  expect("the marketplace", same(doc.marketplace, chain.contracts.marketplace) && same(t.marketplace, doc.marketplace));
  expect("the token", same(t.token, chain.contracts.creditToken));
  expect("the consumer", doc.consumer.did === key.did && same(doc.consumer.account, evm.address) && same(t.consumer, evm.address));
  expect(
    "the provider (the offer's, linked on chain to the account paid)",
    doc.provider.did === offer.offer.provider && providerAccount.did === offer.offer.provider && same(doc.provider.account, t.provider),
  );
  expect("the offer and its version", doc.offerId === asked.offerId && doc.offerVersion === offer.offer.version);
  expect("the plan", plan !== undefined && JSON.stringify(doc.plan) === JSON.stringify(plan));
  expect("the quantity", doc.quantity === asked.quantity && r.quantity === asked.quantity);
  expect("the terms hash", same(t.termsHash, keccak256(toHex(bytes))));
  expect("the document's CID", rawCid(bytes) === t.termsCid && r.documentCid === t.termsCid);
  expect("the deposit", t.deposit === doc.deposit && (asked.deposit == null || asked.deposit === doc.deposit));
  expect("the period price", t.periodPrice === doc.price.periodPrice && t.period === doc.price.periodSeconds);
  const usage = doc.usage;
  const zero: Schemas["UsagePrices"] = {
    cpuCoreHour: "0",
    memoryGibHour: "0",
    gpuHour: "0",
    networkGb: "0",
    dataAccess: "0",
    gpuRecordFee: "0",
  };
  expect("the usage prices", JSON.stringify(t.prices) === JSON.stringify(usage?.prices ?? zero));
  // Each unit price is the plan's (the GPU record fee is the region's, read by the broker from the
  // chain's BillingModels: shown with the terms and bounded by the cap).
  const perUse = plan?.pricing.payPerUse;
  expect(
    "the usage prices against the plan's",
    (usage === undefined) === (perUse == null) &&
      (["cpuCoreHour", "memoryGibHour", "gpuHour", "networkGb", "dataAccess"] as const).every(
        (k) => (usage?.prices[k] ?? "0") === (perUse?.[k] ?? "0"),
      ),
  );
  expect("the usage cap", t.usageCap === (usage?.cap ?? "0") && (asked.usageCap == null || asked.usageCap === t.usageCap));
  expect("the charging window", t.capWindow === (usage?.windowSeconds ?? 0));
  const now = Math.floor(Date.now() / 1000);
  expect("the issue time", Math.abs(doc.issuedAt - now) <= ISSUE_SKEW);
  expect("the permit nonce", BigInt(t.permitNonce) <= BigInt(mine.permitNonce));
  expect("the deadline", t.deadline > now && t.deadline <= now + MAX_WINDOW);
  return faults;
}

const idempotencyKey = (reservation: string) => {
  const name = `mercato.purchase.${reservation}`;
  let k = sessionStorage.getItem(name);
  if (!k) {
    k = crypto.randomUUID();
    sessionStorage.setItem(name, k);
  }
  return k;
};

/** Signs and buys; the same reservation always carries the same idempotency key. */
export async function purchase(key: Key, evm: EvmKey, r: Reservation): Promise<Contract> {
  const [openSignature, permitSignature] = await signPurchase(evm, r.terms);
  return call<Contract>(key, "POST", `/v1/reservations/${r.id}/purchase`, {
    body: {
      documentSignature: sign(key, "mercato-contract-document/1", r.document),
      openSignature,
      permitSignature,
    },
    headers: { "idempotency-key": idempotencyKey(r.id) },
  });
}
