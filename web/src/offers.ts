// Publishing an offer from the page. The catalog verifies the provider's signature over the
// offer's canonical form (serde's serialisation of it), which a browser cannot reproduce byte for
// byte (field order, float formatting); the broker gives that form (POST /v1/offers/canonical,
// every invalid field named at once), the page checks it says exactly what the provider wrote,
// signs those bytes and publishes them.
import type { Schemas } from "./api/client";
import { sign, type Key } from "./keys";
import { formatCredits, parseCredits } from "./money";
import { call } from "./session";

export type Offer = Schemas["Offer"];

/** Values the catalog fills in for fields an offer leaves out. */
const isDefault = (v: unknown) =>
  v === null || v === "" || v === 0 || v === false || (Array.isArray(v) && v.length === 0) ||
  (typeof v === "object" && v !== null && Object.values(v).every(isDefault));

/** Where `canonical` says something other than `intended` (a field changed, added or dropped). */
export function differences(intended: unknown, canonical: unknown, at = "offer"): string[] {
  if (typeof intended === "number" || typeof canonical === "number")
    return Number(intended) === Number(canonical) ? [] : [at];
  if (Array.isArray(intended) || Array.isArray(canonical)) {
    if (!Array.isArray(intended) || !Array.isArray(canonical) || intended.length !== canonical.length) return [at];
    return intended.flatMap((v, i) => differences(v, canonical[i], `${at}[${i}]`));
  }
  if (typeof intended === "object" && intended !== null && typeof canonical === "object" && canonical !== null) {
    const a = intended as Record<string, unknown>;
    const b = canonical as Record<string, unknown>;
    const out: string[] = [];
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (k in a) out.push(...differences(a[k], b[k], `${at}.${k}`));
      else if (!isDefault(b[k])) out.push(`${at}.${k}`);
    }
    return out;
  }
  return intended === canonical ? [] : [at];
}

/** Publishes `offer` (its id, provider and version set) signed by `key`: the published version. */
export async function publishOffer(key: Key, offer: Omit<Offer, "signature">): Promise<Schemas["Published"]> {
  const { canonical } = await call<Schemas["CanonicalOffer"]>(key, "POST", "/v1/offers/canonical", {
    body: { ...offer, signature: "" },
  });
  const parsed = JSON.parse(canonical) as Offer;
  const changed = differences({ ...offer, signature: "" }, parsed);
  if (changed.length) throw new Error(`the broker's canonical form changes ${changed.join(", ")}; nothing was signed`);
  return call<Schemas["Published"]>(key, "POST", "/v1/offers", {
    body: { ...parsed, signature: sign(key, "mercato-offer/1", canonical) },
  });
}

/** The next version of offer `id` for `key`'s provider (1 when it is new). */
export async function nextVersion(id: string): Promise<number> {
  const r = await fetch(`/v1/offers/${encodeURIComponent(id)}`, { headers: { accept: "application/json" } });
  if (r.status === 404) return 1;
  if (!r.ok) throw new Error(`the broker did not say whether offer ${id} exists (${r.status})`);
  return ((await r.json()) as Schemas["OfferDocument"]).offer.version + 1;
}

export type ResourceKind = "compute" | "gpu" | "network" | "data";

/** The new-offer form's fields, as typed. */
export interface OfferForm {
  id: string;
  name: string;
  description: string;
  country: string;
  region: string;
  city: string;
  latitude: string;
  longitude: string;
  kind: ResourceKind;
  cores: string;
  memoryGib: string;
  gpuModel: string;
  gpuCount: string;
  bandwidthMbps: string;
  latencyMs: string;
  dataset: string;
  licence: string;
  endpoint: string;
  planId: string;
  planName: string;
  capacity: string;
  pricing: "reserved" | "payPerUse";
  price: string;
  periodHours: string;
}

export const EMPTY_FORM: OfferForm = {
  id: "",
  name: "",
  description: "",
  country: "",
  region: "",
  city: "",
  latitude: "",
  longitude: "",
  kind: "compute",
  cores: "",
  memoryGib: "",
  gpuModel: "",
  gpuCount: "1",
  bandwidthMbps: "",
  latencyMs: "",
  dataset: "",
  licence: "",
  endpoint: "",
  planId: "",
  planName: "",
  capacity: "1",
  pricing: "reserved",
  price: "",
  periodHours: "1",
};

const IDENT = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** The offer the form describes, or every field that is wrong (named as the form labels it). */
export function offerFromForm(f: OfferForm, provider: string): { ok: true; offer: Omit<Offer, "signature" | "version"> } | { ok: false; errors: string[] } {
  const errors: string[] = [];
  const need = (label: string, v: string) => {
    if (!v.trim()) errors.push(`${label}: required.`);
    return v.trim();
  };
  const int = (label: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!v.trim() || !Number.isInteger(n) || n < min || n > max) errors.push(`${label}: a whole number from ${min} to ${max}.`);
    return n;
  };
  const num = (label: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!v.trim() || !Number.isFinite(n) || n < min || n > max) errors.push(`${label}: a number from ${min} to ${max}.`);
    return n;
  };
  const id = f.id.trim();
  if (!IDENT.test(id)) errors.push("Offer id: 1-63 of a-z, 0-9 and -, starting with a letter or digit.");
  const name = need("Name", f.name);
  const country = f.country.trim();
  if (!/^[A-Z]{2}$/.test(country)) errors.push("Country: an ISO 3166-1 code of two capital letters, like DE.");
  const region = f.region.trim();
  if (!IDENT.test(region)) errors.push("Region: lower-case letters, digits and -, like eu-west.");
  const latitude = num("Latitude", f.latitude, -90, 90);
  const longitude = num("Longitude", f.longitude, -180, 180);
  // The form describes one unit; the offer's resources are what all units sold at once take.
  const capacity = int("Units sold at once", f.capacity, 1, 1_000_000);
  const resources: Offer["resources"] = {};
  const unit: Schemas["PlanUnit"] = {};
  if (f.kind === "compute" || f.kind === "gpu") {
    const cores = int("Cores per unit", f.cores, 1, 4096);
    const memoryGib = int("Memory per unit (GiB)", f.memoryGib, 1, 65536);
    resources.compute = { architecture: "amd64", cpuMillicores: cores * 1000 * capacity, memoryMib: memoryGib * 1024 * capacity };
    unit.cpuMillicores = cores * 1000;
    unit.memoryMib = memoryGib * 1024;
  }
  if (f.kind === "gpu") {
    const model = need("GPU model", f.gpuModel);
    const count = int("GPUs per unit", f.gpuCount, 1, 64);
    resources.gpu = { vendor: "nvidia", model, memoryMib: 16384, share: { mode: "whole", count: count * capacity } };
    unit.gpuPermille = count * 1000;
  }
  if (f.kind === "network") {
    const bandwidthMbps = int("Bandwidth per unit (Mbit/s)", f.bandwidthMbps, 1, 1_000_000);
    const latencyMs = num("Latency (ms)", f.latencyMs, 0, 10_000);
    resources.network = { bandwidthMbps: bandwidthMbps * capacity, latencyMs, serviceLevel: "guaranteed" };
    unit.bandwidthMbps = bandwidthMbps;
  }
  if (f.kind === "data") {
    const dataset = need("Dataset", f.dataset);
    const licence = need("Licence", f.licence);
    const accessEndpoint = f.endpoint.trim();
    if (!/^https?:\/\/\S+$/.test(accessEndpoint)) errors.push("Access endpoint: an http(s) URL.");
    resources.data = { dataset, licence, accessEndpoint, sizeBytes: 0 };
    unit.dataAccesses = 1;
  }
  const planId = f.planId.trim();
  if (!IDENT.test(planId)) errors.push("Plan id: 1-63 of a-z, 0-9 and -.");
  const planName = need("Plan name", f.planName);
  const price = parseCredits(f.price);
  if (!price.ok) errors.push(`Price: ${price.error}.`);
  else if (price.base === "0") errors.push("Price: more than 0 credits.");
  let pricing: Schemas["Pricing"] = {};
  if (f.pricing === "reserved") {
    const hours = int("Period (hours)", f.periodHours, 1, 24 * 366);
    if (price.ok) pricing = { reserved: { price: price.base, periodSeconds: hours * 3600 } };
  } else if (price.ok) {
    const per: Record<ResourceKind, keyof NonNullable<Schemas["Pricing"]["payPerUse"]>> = {
      compute: "cpuCoreHour",
      gpu: "gpuHour",
      network: "networkGb",
      data: "dataAccess",
    };
    pricing = { payPerUse: { [per[f.kind]]: price.base } };
  }
  if (errors.length) return { ok: false, errors };
  return {
    ok: true,
    offer: {
      id,
      provider,
      name,
      description: f.description.trim(),
      location: { country, region, city: f.city.trim(), latitude, longitude },
      resources,
      plans: [{ id: planId, name: planName, capacity, unit, pricing }],
    },
  };
}

/**
 * The form that says exactly what `offer` says, or null when the form cannot (several plans, a
 * field the form has no place for): such an offer is edited as JSON instead. Checked by building
 * the offer back from the form and comparing.
 */
export function formFromOffer(offer: Offer): OfferForm | null {
  const [plan, ...more] = offer.plans;
  if (!plan || more.length) return null;
  const r = offer.resources;
  const kind: ResourceKind | null = r.gpu ? "gpu" : r.compute ? "compute" : r.network ? "network" : r.data ? "data" : null;
  if (!kind) return null;
  const u = plan.unit;
  const reserved = plan.pricing.reserved;
  const perUse = Object.values(plan.pricing.payPerUse ?? {}).find((v): v is string => typeof v === "string" && v !== "0");
  const price = reserved?.price ?? perUse;
  if (!price) return null;
  const text = (n: number | null | undefined, scale = 1) => (n ? String(n / scale) : "");
  const form: OfferForm = {
    ...EMPTY_FORM,
    id: offer.id,
    name: offer.name,
    description: offer.description ?? "",
    country: offer.location.country,
    region: offer.location.region,
    city: offer.location.city ?? "",
    latitude: String(offer.location.latitude),
    longitude: String(offer.location.longitude),
    kind,
    cores: text(u.cpuMillicores, 1000),
    memoryGib: text(u.memoryMib, 1024),
    gpuModel: r.gpu?.model ?? "",
    gpuCount: text(u.gpuPermille, 1000) || "1",
    bandwidthMbps: text(u.bandwidthMbps),
    latencyMs: r.network ? String(r.network.latencyMs) : "",
    dataset: r.data?.dataset ?? "",
    licence: r.data?.licence ?? "",
    endpoint: r.data?.accessEndpoint ?? "",
    planId: plan.id,
    planName: plan.name,
    capacity: String(plan.capacity),
    pricing: reserved ? "reserved" : "payPerUse",
    price: formatCredits(price),
    periodHours: reserved ? String(reserved.periodSeconds / 3600) : "1",
  };
  const back = offerFromForm(form, offer.provider);
  if (!back.ok) return null;
  const rest: Partial<Offer> = { ...offer };
  delete rest.signature;
  delete rest.version;
  // Fields the catalog filled with their defaults say nothing: compared without them.
  const [was, built] = [prune(rest), prune(back.offer)];
  return differences(was, built).length || differences(built, was).length ? null : form;
}

/** `v` without the fields whose values are defaults (recursively). */
function prune(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(prune);
  if (typeof v !== "object" || v === null) return v;
  return Object.fromEntries(
    Object.entries(v)
      .filter(([, x]) => !isDefault(x))
      .map(([k, x]) => [k, prune(x)]),
  );
}
