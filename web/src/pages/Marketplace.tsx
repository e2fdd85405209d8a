// The marketplace: every catalog filter, facets, sorting and pages of plans with human prices.
import { useEffect, useState, type FormEvent } from "react";
import { api, ApiError, type Facets, type SearchItem, type SearchQuery } from "../api/client";
import { parseCredits } from "../money";
import { certified, planPrice, shortDid, unitText } from "../plans";
import { go, href } from "../router";

type ResourceClass = NonNullable<SearchQuery["class"]>[number];
type Sort = NonNullable<SearchQuery["sort"]>;
const CLASSES: ResourceClass[] = ["compute", "gpu", "network", "data"];
const SORTS: Sort[] = ["price", "latency", "uptime", "green", "reputation"];

/** The form as typed: text until it is checked. */
interface Form {
  q: string;
  classes: ResourceClass[];
  region: string;
  country: string;
  maxPrice: string;
  maxCertifiedLatencyMs: string;
  minCertifiedUptime: string;
  verified: boolean;
  near: string;
  sort: Sort;
  minCores: string;
  minMemoryGib: string;
  gpuModel: string;
  minGpuMemoryGib: string;
  minBandwidthMbps: string;
  maxLatencyMs: string;
  arch: string;
  minGreen: string;
}

const EMPTY: Form = {
  q: "",
  classes: [],
  region: "",
  country: "",
  maxPrice: "",
  maxCertifiedLatencyMs: "",
  minCertifiedUptime: "",
  verified: false,
  near: "",
  sort: "price",
  minCores: "",
  minMemoryGib: "",
  gpuModel: "",
  minGpuMemoryGib: "",
  minBandwidthMbps: "",
  maxLatencyMs: "",
  arch: "",
  minGreen: "",
};

/** The query a form asks for, or every reason it cannot be sent (all at once). */
export function toQuery(f: Form): { query: SearchQuery; errors: string[] } {
  const errors: string[] = [];
  const query: SearchQuery = { sort: f.sort, limit: 20 };
  if (f.q.trim()) query.q = [f.q.trim()];
  if (f.classes.length) query.class = f.classes;
  if (f.region.trim()) query.region = [f.region.trim()];
  if (f.country.trim()) {
    if (!/^[A-Za-z]{2}$/.test(f.country.trim())) errors.push("Country: two letters (ISO 3166-1), for example DE");
    else query.country = [f.country.trim().toUpperCase()];
  }
  if (f.maxPrice.trim()) {
    const p = parseCredits(f.maxPrice);
    if (p.ok) query.maxPrice = Number(p.base);
    else errors.push(`Price ceiling: ${p.error}`);
  }
  const number = (label: string, text: string, max: number, set: (n: number) => void) => {
    if (!text.trim()) return;
    const n = Number(text);
    if (!Number.isFinite(n) || n < 0 || n > max) errors.push(`${label}: a number from 0 to ${max}`);
    else set(n);
  };
  number("Certified latency", f.maxCertifiedLatencyMs, 60_000, (n) => (query.maxCertifiedLatencyMs = n));
  number("Certified uptime", f.minCertifiedUptime, 100, (n) => (query.minCertifiedUptime = n));
  // Resources per plan unit, typed in the units people use; the API's are millicores and MiB.
  number("Cores at least", f.minCores, 100_000, (n) => (query.minCpuMillicores = Math.round(n * 1000)));
  number("Memory at least", f.minMemoryGib, 1_000_000, (n) => (query.minMemoryMib = Math.round(n * 1024)));
  number("GPU memory at least", f.minGpuMemoryGib, 10_000, (n) => (query.minGpuMemoryMib = Math.round(n * 1024)));
  number("Bandwidth at least", f.minBandwidthMbps, 10_000_000, (n) => (query.minBandwidthMbps = Math.round(n)));
  number("Network latency at most", f.maxLatencyMs, 60_000, (n) => (query.maxLatencyMs = n));
  number("Green energy at least", f.minGreen, 100, (n) => (query.minGreen = Math.round(n)));
  if (f.gpuModel.trim()) query.gpuModel = [f.gpuModel.trim().toLowerCase()];
  if (f.arch.trim()) query.arch = [f.arch.trim().toLowerCase()];
  if (f.verified) query.verified = true;
  if (f.near.trim()) {
    if (!/^-?[0-9.]+,-?[0-9.]+,[0-9.]+$/.test(f.near.trim())) errors.push("Near: latitude,longitude,radius in km");
    else query.near = f.near.trim();
  }
  return { query, errors };
}

export function Marketplace() {
  const [form, setForm] = useState<Form>(EMPTY);
  const [query, setQuery] = useState<SearchQuery>({ sort: "price", limit: 20 });
  const [errors, setErrors] = useState<string[]>([]);
  const [items, setItems] = useState<SearchItem[]>([]);
  const [total, setTotal] = useState<number | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [facets, setFacets] = useState<Facets | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  // Plans picked to compare side by side (up to four).
  const [picked, setPicked] = useState<SearchItem[]>([]);
  const key = (i: SearchItem) => `${i.offerId}/${i.plan.id}`;
  const toggle = (i: SearchItem, on: boolean) =>
    setPicked((p) => (on ? [...p, i].slice(-4) : p.filter((x) => key(x) !== key(i))));

  useEffect(() => {
    const abort = new AbortController();
    Promise.all([api.search(query, abort.signal), api.facets(query, abort.signal)])
      .then(([page, counts]) => {
        setItems(page.items);
        setTotal(page.total);
        setNext(page.nextCursor ?? null);
        setFacets(counts);
      })
      .catch((e: unknown) => {
        if (e instanceof DOMException && e.name === "AbortError") return;
        setFailure(e instanceof ApiError ? e.message : String(e));
      })
      .finally(() => setLoading(false));
    return () => abort.abort();
  }, [query]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const { query: q, errors: wrong } = toQuery(form);
    setErrors(wrong);
    if (wrong.length === 0) {
      setLoading(true);
      setFailure(null);
      setQuery(q);
    }
  };

  const more = async () => {
    if (!next) return;
    try {
      const page = await api.search({ ...query, cursor: next });
      setItems((shown) => [...shown, ...page.items]);
      setNext(page.nextCursor ?? null);
    } catch (e) {
      setFailure(e instanceof ApiError ? e.message : String(e));
    }
  };

  const text = (key: keyof Form, label: string, hint?: string) => (
    <label>
      {label}
      <input
        name={key}
        value={form[key] as string}
        placeholder={hint}
        onChange={(e) => setForm({ ...form, [key]: e.target.value })}
      />
    </label>
  );

  return (
    <section aria-labelledby="market-title">
      <h1 id="market-title">Marketplace</h1>
      <form className="filters" onSubmit={submit} aria-label="Search plans">
        {text("q", "Search", "words in names and descriptions")}
        <fieldset>
          <legend>Classes</legend>
          {CLASSES.map((c) => (
            <label key={c} className="inline">
              <input
                type="checkbox"
                checked={form.classes.includes(c)}
                onChange={(e) =>
                  setForm({
                    ...form,
                    classes: e.target.checked ? [...form.classes, c] : form.classes.filter((x) => x !== c),
                  })
                }
              />
              {c}
            </label>
          ))}
        </fieldset>
        {text("region", "Region", "eu-west")}
        {text("country", "Country", "DE")}
        {text("maxPrice", "Price ceiling (credits per unit-hour)", "0.5")}
        {text("maxCertifiedLatencyMs", "Certified latency at most (ms)")}
        {text("minCertifiedUptime", "Certified uptime at least (%)")}
        {text("near", "Near (lat,lon,km)", "48.1,11.6,500")}
        <fieldset className="resources">
          <legend>Resources per unit</legend>
          {text("minCores", "Cores at least", "4")}
          {text("minMemoryGib", "Memory at least (GiB)", "16")}
          {text("arch", "Architecture", "amd64")}
          {text("gpuModel", "GPU model", "nvidia-a100")}
          {text("minGpuMemoryGib", "GPU memory at least (GiB)", "40")}
          {text("minBandwidthMbps", "Bandwidth at least (Mbit/s)", "1000")}
          {text("maxLatencyMs", "Network latency at most (ms)", "20")}
          {text("minGreen", "Green energy at least (%)", "50")}
        </fieldset>
        <label className="inline">
          <input type="checkbox" checked={form.verified} onChange={(e) => setForm({ ...form, verified: e.target.checked })} />
          Verified providers only
        </label>
        <label>
          Sort by
          <select value={form.sort} onChange={(e) => setForm({ ...form, sort: e.target.value as Sort })}>
            {SORTS.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <button type="submit">Search</button>
        {errors.length > 0 && (
          <ul className="errors" role="alert">
            {errors.map((e) => (
              <li key={e}>{e}</li>
            ))}
          </ul>
        )}
      </form>

      {facets && (
        <p className="facets" aria-label="Facets">
          {facets.classes.map((c) => `${c.value}: ${c.count}`).join(" · ")}
          {facets.regions.length > 0 && ` — regions ${facets.regions.map((r) => `${r.value} (${r.count})`).join(", ")}`}
        </p>
      )}
      {failure && (
        <p className="failure" role="alert">
          {failure}
        </p>
      )}
      <p aria-live="polite">{loading ? "Searching…" : total !== null && `${total} plan(s)`}</p>
      <table className="results">
        <thead>
          <tr>
            <th scope="col">Compare</th>
            <th scope="col">Offer</th>
            <th scope="col">Plan</th>
            <th scope="col">Price</th>
            <th scope="col">Where</th>
            <th scope="col">Certified</th>
            <th scope="col">Reputation</th>
          </tr>
        </thead>
        <tbody>
          {items.map((i) => (
            <tr key={key(i)} data-testid="plan">
              <td>
                <input
                  type="checkbox"
                  aria-label={`Compare ${i.name}, ${i.plan.name}`}
                  checked={picked.some((x) => key(x) === key(i))}
                  onChange={(e) => toggle(i, e.target.checked)}
                />
              </td>
              <td>
                <a
                  href={href({ page: "offer", id: i.offerId })}
                  onClick={(e) => {
                    e.preventDefault();
                    go({ page: "offer", id: i.offerId });
                  }}
                >
                  {i.name}
                </a>
                {i.verifiedProvider && <span className="badge">verified</span>}
              </td>
              <td>{i.plan.name}</td>
              <td>{planPrice(i.plan.pricing)}</td>
              <td>
                {i.location.region} ({i.location.country})
              </td>
              <td>{certified(i)}</td>
              <td>{i.reputation.toFixed(2)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {next && (
        <button type="button" onClick={more}>
          More plans
        </button>
      )}
      {picked.length > 0 && <Compare items={picked} />}
    </section>
  );
}

/** Plans side by side: a column each. */
function Compare({ items }: { items: SearchItem[] }) {
  const rows: [string, (i: SearchItem) => string][] = [
    ["Offer", (i) => i.name],
    ["Plan", (i) => i.plan.name],
    ["Provider", (i) => shortDid(i.provider)],
    ["Where", (i) => `${i.location.region} (${i.location.country})`],
    ["Price", (i) => planPrice(i.plan.pricing)],
    ["One unit", (i) => unitText(i.plan.unit)],
    ["Certified", certified],
    ["Verified provider", (i) => (i.verifiedProvider ? "yes" : "no")],
    ["Reputation", (i) => i.reputation.toFixed(2)],
    ["Green energy", (i) => `${i.greenEnergyPercent}%`],
  ];
  return (
    <section aria-labelledby="compare-title">
      <h2 id="compare-title">Compare</h2>
      <table className="results compare" data-testid="compare">
        <tbody>
          {rows.map(([label, value]) => (
            <tr key={label}>
              <th scope="row">{label}</th>
              {items.map((i) => (
                <td key={`${i.offerId}/${i.plan.id}`}>{value(i)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
