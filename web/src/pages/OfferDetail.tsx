// One offer: resources, plans with human prices, location, certified metrics with issuer and
// validity (the broker's credentials; the provider's own claims are marked self-declared), and
// the provider's reputation with every component.
import { lazy, Suspense, useEffect, useState } from "react";
import { api, ApiError, type OfferDocument, type Reputation, type SearchItem } from "../api/client";
import { metricText, planPrice, shortDid, size, unitText } from "../plans";
import { go } from "../router";

const Buy = lazy(() => import("./Buy").then((m) => ({ default: m.Buy })));

interface Loaded {
  doc: OfferDocument;
  reputation: Reputation | null;
  /** A plan of the provider's, for the certified metrics (they are the provider's). */
  hit: SearchItem | null;
}

export function OfferDetail({ id }: { id: string }) {
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  const [buying, setBuying] = useState<string | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    (async () => {
      const doc = await api.offer(id, abort.signal);
      const provider = doc.offer.provider;
      const [reputation, page] = await Promise.all([
        api.reputation(provider, abort.signal).catch(() => null),
        api.search({ provider: [provider], limit: 1 }, abort.signal),
      ]);
      setLoaded({ doc, reputation, hit: page.items[0] ?? null });
    })().catch((e: unknown) => {
      if (e instanceof DOMException && e.name === "AbortError") return;
      setFailure(e instanceof ApiError && e.status === 404 ? `There is no offer ${id}.` : String(e instanceof Error ? e.message : e));
    });
    return () => abort.abort();
  }, [id]);

  if (failure)
    return (
      <section>
        <p role="alert" className="failure">
          {failure}
        </p>
        <a href="/" onClick={(e) => (e.preventDefault(), go({ page: "market" }))}>
          Back to the marketplace
        </a>
      </section>
    );
  if (!loaded) return <p aria-live="polite">Loading the offer…</p>;
  const { doc, reputation, hit } = loaded;
  const o = doc.offer;
  const r = o.resources;
  const metrics = hit?.certifiedMetrics ?? [];
  const declared = o.declaredMetrics ?? [];
  const chosen = o.plans.find((p) => p.id === buying);
  return (
    <article aria-labelledby="offer-title">
      <a href="/" onClick={(e) => (e.preventDefault(), go({ page: "market" }))}>
        ← Marketplace
      </a>
      <h1 id="offer-title">{o.name}</h1>
      {doc.status === "withdrawn" && <p className="failure">Withdrawn: it can no longer be bought.</p>}
      {o.description && <p>{o.description}</p>}
      <dl className="facts">
        <dt>Provider</dt>
        <dd title={o.provider}>{shortDid(o.provider)}</dd>
        <dt>Where</dt>
        <dd>
          {o.location.city ? `${o.location.city}, ` : ""}
          {o.location.country} ({o.location.region}) — {o.location.latitude.toFixed(2)}, {o.location.longitude.toFixed(2)}
        </dd>
        <dt>Version</dt>
        <dd>{o.version}</dd>
        {r.compute && (
          <>
            <dt>Compute</dt>
            <dd>
              {r.compute.cpuMillicores / 1000} cores ({r.compute.architecture}), {size(r.compute.memoryMib)}
              {r.compute.storageGib ? `, ${r.compute.storageGib} GiB disk` : ""}
            </dd>
          </>
        )}
        {r.gpu && (
          <>
            <dt>GPU</dt>
            <dd>
              {r.gpu.vendor} {r.gpu.model}, {size(r.gpu.memoryMib)} each,{" "}
              {r.gpu.share.mode === "whole" ? `${r.gpu.share.count} whole` : `${r.gpu.share.permille / 10}% time-sliced`}
            </dd>
          </>
        )}
        {r.network && (
          <>
            <dt>Network</dt>
            <dd>
              {r.network.bandwidthMbps} Mbit/s, {r.network.latencyMs} ms, {r.network.serviceLevel}
            </dd>
          </>
        )}
        {r.data && (
          <>
            <dt>Data</dt>
            <dd>
              {r.data.dataset} ({r.data.licence}), {(r.data.sizeBytes / 1e9).toFixed(1)} GB
            </dd>
          </>
        )}
      </dl>

      <h2>Plans</h2>
      <table className="results">
        <thead>
          <tr>
            <th scope="col">Plan</th>
            <th scope="col">One unit</th>
            <th scope="col">Price</th>
            <th scope="col">Units available at once</th>
            <th scope="col">Buy</th>
          </tr>
        </thead>
        <tbody>
          {o.plans.map((p) => (
            <tr key={p.id} data-testid="offer-plan">
              <td>{p.name}</td>
              <td>{unitText(p.unit)}</td>
              <td>{planPrice(p.pricing)}</td>
              <td>{p.capacity}</td>
              <td>
                {doc.status === "withdrawn" ? (
                  "—"
                ) : (
                  <button type="button" aria-expanded={buying === p.id} onClick={() => setBuying(buying === p.id ? null : p.id)}>
                    Buy {p.name}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {chosen && (
        <section aria-label={`Buy ${chosen.name}`} className="buy">
          <h2>Buy {chosen.name}</h2>
          <Suspense fallback={<p aria-live="polite">Loading…</p>}>
            <Buy key={chosen.id} offerId={o.id} plan={chosen} />
          </Suspense>
        </section>
      )}

      <h2>Certified metrics</h2>
      {metrics.length === 0 ? (
        <p>None: the broker holds no valid credential about this provider.</p>
      ) : (
        <ul>
          {metrics.map((m) => (
            <li key={m.credential}>
              {metricText(m)} — issued by <span title={m.issuer}>{shortDid(m.issuer)}</span>
              {m.validUntil ? `, valid until ${new Date(m.validUntil * 1000).toISOString().slice(0, 16).replace("T", " ")} UTC` : ""}
            </li>
          ))}
        </ul>
      )}
      {declared.length > 0 && (
        <p>Self-declared by the provider (not certified): {declared.map(metricText).join(", ")}</p>
      )}

      <h2>Provider reputation</h2>
      {reputation ? (
        <>
          <p data-testid="reputation">
            Score {reputation.score.toFixed(2)} of 1 ({reputation.formula})
          </p>
          <ul>
            <li>contracts completed {reputation.components.contractsCompleted}, active {reputation.components.contractsActive}</li>
            <li>
              failed {reputation.components.contractsFailed}, ended early {reputation.components.contractsEndedEarly}
            </li>
            <li>
              usage records settled {reputation.components.recordsSettled} of {reputation.components.recordsReported}; disputes lost{" "}
              {reputation.components.disputesLost}, won {reputation.components.disputesWon}
            </li>
          </ul>
        </>
      ) : (
        <p>The broker did not give the provider's reputation.</p>
      )}
    </article>
  );
}
