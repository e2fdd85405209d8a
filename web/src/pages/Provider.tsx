// The provider console: its configuration (registered on chain, signed here by its account), its
// offers (a new one from a form that names every wrong field at once, a new version of one,
// withdrawal), the purchases proposed to it (the document checked and signed here), its running
// contracts with the usage its agent reported, and its earnings, withdrawn by a transaction its
// account signs here (the broker relays the signed bytes).
import { useEffect, useState } from "react";
import type { Address } from "viem";
import { api, type Schemas } from "../api/client";
import { OPENED, useEvents } from "../events";
import { signOwnCall, signSetConfig, storedEvmKey, withdrawCall } from "../evm";
import { sign, type Key } from "../keys";
import {
  EMPTY_FORM,
  formFromOffer,
  nextVersion,
  offerFromForm,
  publishOffer,
  type Offer,
  type OfferForm,
  type ResourceKind,
} from "../offers";
import { formatCredits } from "../money";
import { planPrice } from "../plans";
import { rawCid } from "../purchase";
import { call, ledger } from "../session";
import { RoleGate } from "./RoleGate";
import { explain } from "./Buy";

type Contract = Schemas["Contract"];

export function Provider() {
  return (
    <RoleGate
      roles={["provider"]}
      needs="The provider console needs your provider keys in this page"
      wrongRole={(role) =>
        `This key is registered as ${role}, not as a provider: the console is for providers. Create provider keys under Your keys (a did has one role).`
      }
    >
      {(key) => <Console didKey={key} />}
    </RoleGate>
  );
}

function Console({ didKey }: { didKey: Key }) {
  // Offers published from this page: listed at once (the catalog's search follows shortly).
  const [published, setPublished] = useState<string[]>([]);
  // An offer being edited in the form (a new version of it when published).
  const [editing, setEditing] = useState<Offer | null>(null);
  // What the last publication said (the form starts afresh after it).
  const [notice, setNotice] = useState<string | null>(null);
  // One event stream for the whole console: each part reads its state anew when it changes.
  const [changed, setChanged] = useState(0);
  useEvents(didKey, (e) => {
    if (e.topic === OPENED || /^(offer|contract|usage)\./.test(e.topic)) setChanged((n) => n + 1);
  });
  return (
    <section aria-labelledby="provider-title">
      <h1 id="provider-title">Provider console</h1>
      <Configuration didKey={didKey} />
      <NewOffer
        key={editing ? `${editing.id}@${editing.version}` : "new"}
        didKey={didKey}
        editing={editing}
        notice={notice}
        onDone={(done) => {
          setEditing(null);
          setNotice(done && `Offer ${done.id} version ${done.version} published.`);
          if (done) setPublished((ids) => [...ids, done.id]);
        }}
      />
      <YourOffers
        didKey={didKey}
        published={published}
        changed={changed}
        onEdit={(offer) => {
          setNotice(null);
          setEditing(offer);
        }}
      />
      <YourContracts didKey={didKey} changed={changed} />
      <Earnings didKey={didKey} changed={changed} />
    </section>
  );
}

function useAction() {
  const [message, setMessage] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const act = async (what: string, run: () => Promise<string>) => {
    setBusy(true);
    setMessage(null);
    try {
      setMessage(await run());
    } catch (e) {
      setMessage(`${what} failed: ${explain(e)}`);
    } finally {
      setBusy(false);
    }
  };
  return { message, busy, act };
}

function Configuration({ didKey }: { didKey: Key }) {
  const [current, setCurrent] = useState<Schemas["ProviderConfigView"] | null>(null);
  const [text, setText] = useState("");
  const [version, setVersion] = useState(0);
  const { message, busy, act } = useAction();
  useEffect(() => {
    call<Schemas["ProviderConfigView"]>(didKey, "GET", `/v1/providers/${encodeURIComponent(didKey.did)}/config`)
      .then((c) => {
        setCurrent(c);
        setText((t) => t || c.config);
      })
      .catch(() => setCurrent(null));
  }, [didKey, version]);

  const register = () =>
    act("Registering the configuration", async () => {
      const evm = storedEvmKey();
      if (!evm) throw new Error("your account key is not in this page; create or import it under Your keys, and link it");
      if (!text.trim()) throw new Error("the configuration is empty");
      const cid = rawCid(new TextEncoder().encode(text));
      if (!cid) throw new Error("the configuration is over 256 KiB");
      const [chain, account] = await Promise.all([
        ledger(),
        call<Schemas["AccountInfo"]>(didKey, "GET", `/v1/accounts/${evm.address}`),
      ]);
      const deadline = Math.floor(Date.now() / 1000) + 600;
      const signature = await signSetConfig(evm, chain, cid, account.registryNonce, deadline);
      const done = await call<Schemas["ConfigRegistered"]>(didKey, "POST", "/v1/providers/me/config", {
        body: { config: text, cid, deadline, signature },
      });
      setVersion((v) => v + 1);
      return `Configuration version ${done.version} registered on chain (${done.cid}).`;
    });

  return (
    <section aria-labelledby="config-title">
      <h2 id="config-title">Configuration</h2>
      <p data-testid="config-current">
        {current ? `Version ${current.version}, CID ${current.cid}.` : "None registered yet."}
      </p>
      <label className="block">
        Configuration (YAML: name, endpoints, policies)
        <textarea rows={7} value={text} onChange={(e) => setText(e.target.value)} spellCheck={false} />
      </label>
      <button type="button" disabled={busy} onClick={() => void register()}>
        Register configuration
      </button>
      {message && (
        <p role="status" data-testid="config-message">
          {message}
        </p>
      )}
    </section>
  );
}

const FIELDS: [keyof OfferForm, string, ResourceKind[] | null][] = [
  ["id", "Offer id", null],
  ["name", "Name", null],
  ["description", "Description", null],
  ["country", "Country", null],
  ["region", "Region", null],
  ["city", "City", null],
  ["latitude", "Latitude", null],
  ["longitude", "Longitude", null],
  ["cores", "Cores per unit", ["compute", "gpu"]],
  ["memoryGib", "Memory per unit (GiB)", ["compute", "gpu"]],
  ["gpuModel", "GPU model", ["gpu"]],
  ["gpuCount", "GPUs per unit", ["gpu"]],
  ["bandwidthMbps", "Bandwidth per unit (Mbit/s)", ["network"]],
  ["latencyMs", "Latency (ms)", ["network"]],
  ["dataset", "Dataset", ["data"]],
  ["licence", "Licence", ["data"]],
  ["endpoint", "Access endpoint", ["data"]],
  ["planId", "Plan id", null],
  ["planName", "Plan name", null],
  ["capacity", "Units sold at once", null],
];

function NewOffer({
  didKey,
  editing,
  notice,
  onDone,
}: {
  didKey: Key;
  editing: Offer | null;
  notice: string | null;
  onDone: (published: Schemas["Published"] | null) => void;
}) {
  // Keyed by the offer edited: a new one starts from that offer's form.
  const [form, setForm] = useState<OfferForm>(() => (editing && formFromOffer(editing)) ?? EMPTY_FORM);
  const [errors, setErrors] = useState<string[]>([]);
  const { message, busy, act } = useAction();
  const set = (k: keyof OfferForm, v: string) => setForm((f) => ({ ...f, [k]: v }));

  const publish = () => {
    const built = offerFromForm(form, didKey.did);
    const errs = built.ok ? [] : built.errors;
    if (editing && form.id.trim() !== editing.id) errs.push(`Offer id: must stay ${editing.id} (a new id is a new offer).`);
    setErrors(errs);
    if (!built.ok || errs.length) return;
    void act("Publishing", async () => {
      const version = await nextVersion(built.offer.id);
      const done = await publishOffer(didKey, { ...built.offer, version });
      setForm(EMPTY_FORM);
      onDone(done);
      return `Offer ${done.id} version ${done.version} published.`;
    });
  };
  const title = editing ? `Edit offer ${editing.id}: publishing makes version ${editing.version + 1}` : "New offer";

  return (
    <section aria-labelledby="new-offer-title">
      <h2 id="new-offer-title">{title}</h2>
      <form
        className="filters"
        aria-label={editing ? "Edit offer" : "New offer"}
        onSubmit={(e) => {
          e.preventDefault();
          publish();
        }}
      >
        <label>
          Class
          <select value={form.kind} onChange={(e) => set("kind", e.target.value)}>
            <option value="compute">compute</option>
            <option value="gpu">GPU</option>
            <option value="network">network</option>
            <option value="data">data</option>
          </select>
        </label>
        {FIELDS.filter(([, , kinds]) => !kinds || kinds.includes(form.kind)).map(([k, label]) => (
          <label key={k}>
            {label}
            <input value={form[k]} onChange={(e) => set(k, e.target.value)} />
          </label>
        ))}
        <label>
          Pricing
          <select value={form.pricing} onChange={(e) => set("pricing", e.target.value)}>
            <option value="reserved">reserved, per period</option>
            <option value="payPerUse">pay per use</option>
          </select>
        </label>
        <label>
          {form.pricing === "reserved"
            ? "Price per period (credits)"
            : `Price per ${{ compute: "core-hour", gpu: "GPU-hour", network: "GB", data: "access" }[form.kind]} (credits)`}
          <input value={form.price} onChange={(e) => set("price", e.target.value)} />
        </label>
        {form.pricing === "reserved" && (
          <label>
            Period (hours)
            <input value={form.periodHours} onChange={(e) => set("periodHours", e.target.value)} />
          </label>
        )}
        <button type="submit" disabled={busy}>
          {editing ? "Publish new version" : "Publish offer"}
        </button>
        {editing && (
          <button type="button" onClick={() => onDone(null)}>
            Cancel editing
          </button>
        )}
      </form>
      {errors.length > 0 && (
        <ul role="alert" className="failure" data-testid="offer-errors">
          {errors.map((e) => (
            <li key={e}>{e}</li>
          ))}
        </ul>
      )}
      {(message ?? notice) && (
        <p role="status" data-testid="offer-message">
          {message ?? notice}
        </p>
      )}
    </section>
  );
}

function YourOffers({
  didKey,
  published,
  changed,
  onEdit,
}: {
  didKey: Key;
  published: string[];
  changed: number;
  onEdit: (offer: Offer) => void;
}) {
  const [offers, setOffers] = useState<Offer[]>([]);
  const [editing, setEditing] = useState<{ id: string; text: string } | null>(null);
  const [tick, setTick] = useState(0);
  const { message, busy, act } = useAction();
  useEffect(() => {
    (async () => {
      const page = await api.search({ provider: [didKey.did], limit: 100 });
      const ids = new Set([...published, ...page.items.map((i) => i.offerId)]);
      const docs = await Promise.all([...ids].map((id) => api.offer(id).catch(() => null)));
      return docs.flatMap((d) => (d && d.status !== "withdrawn" ? [d.offer] : []));
    })()
      .then(setOffers)
      .catch(() => setOffers([]));
  }, [didKey, tick, published, changed]);

  const edit = (id: string) =>
    act("Loading the offer", async () => {
      const { offer } = await api.offer(id);
      if (formFromOffer(offer)) {
        setEditing(null);
        onEdit(offer);
        return `Editing ${id} in the form above: publishing makes version ${offer.version + 1}.`;
      }
      // An offer the form cannot say exactly (several plans, more fields) is edited as JSON. The
      // page fills these in when it publishes: the provider, the next version, the signature.
      const editable: Partial<Offer> = { ...offer };
      delete editable.signature;
      delete editable.version;
      delete editable.provider;
      setEditing({ id, text: JSON.stringify(editable, null, 2) });
      return `Editing ${id}: publishing makes version ${offer.version + 1}.`;
    });

  const saveEdit = () =>
    act("Publishing the new version", async () => {
      if (!editing) return "";
      let parsed: Omit<Offer, "signature" | "version" | "provider">;
      try {
        parsed = JSON.parse(editing.text) as typeof parsed;
      } catch (e) {
        throw new Error(`the offer is not JSON: ${explain(e)}`, { cause: e });
      }
      if (parsed.id !== editing.id) throw new Error(`the id must stay ${editing.id} (a new id is a new offer)`);
      const version = await nextVersion(editing.id);
      const done = await publishOffer(didKey, { ...parsed, provider: didKey.did, version });
      setEditing(null);
      setTick((t) => t + 1);
      return `Offer ${done.id} version ${done.version} published.`;
    });

  const withdraw = (id: string) =>
    act("Withdrawing", async () => {
      await call(didKey, "POST", `/v1/offers/${encodeURIComponent(id)}/withdraw`);
      setTick((t) => t + 1);
      return `Offer ${id} withdrawn: it is no longer sold; its contracts go on.`;
    });

  return (
    <section aria-labelledby="offers-title">
      <h2 id="offers-title">Your offers</h2>
      {offers.length === 0 ? (
        <p>None on sale.</p>
      ) : (
        <table className="results">
          <thead>
            <tr>
              <th scope="col">Offer</th>
              <th scope="col">Version</th>
              <th scope="col">A plan</th>
              <th scope="col" />
            </tr>
          </thead>
          <tbody>
            {offers.map((o) => (
              <tr key={o.id} data-testid="own-offer">
                <td>
                  {o.name} <code>{o.id}</code>
                </td>
                <td>{o.version}</td>
                <td>{o.plans.map((p) => `${p.name}: ${planPrice(p.pricing)}`).join("; ")}</td>
                <td>
                  <button type="button" disabled={busy} onClick={() => void edit(o.id)}>
                    Edit {o.id}
                  </button>{" "}
                  <button type="button" disabled={busy} onClick={() => void withdraw(o.id)}>
                    Withdraw {o.id}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {editing && (
        <div>
          <label className="block">
            Offer {editing.id} (JSON; prices in base units, 1 credit = 100000000)
            <textarea rows={16} value={editing.text} spellCheck={false} onChange={(e) => setEditing({ ...editing, text: e.target.value })} />
          </label>
          <button type="button" disabled={busy} onClick={() => void saveEdit()}>
            Publish new version
          </button>{" "}
          <button type="button" onClick={() => setEditing(null)}>
            Cancel
          </button>
        </div>
      )}
      {message && (
        <p role="status" data-testid="offers-message">
          {message}
        </p>
      )}
    </section>
  );
}

function YourContracts({ didKey, changed }: { didKey: Key; changed: number }) {
  const [contracts, setContracts] = useState<Contract[]>([]);
  const [tick, setTick] = useState(0);
  const { message, busy, act } = useAction();
  useEffect(() => {
    call<Contract[]>(didKey, "GET", "/v1/contracts?limit=100")
      .then(setContracts)
      .catch(() => setContracts([]));
  }, [didKey, tick, changed]);
  const proposed = contracts.filter((c) => c.state === "proposed");
  const running = contracts.filter((c) => c.state === "active" || c.state === "opening" || c.state === "accepted");
  // The usage the agent reported on each active contract, as it accrues.
  const [usage, setUsage] = useState<Record<string, Schemas["ContractUsage"]>>({});
  const activeIds = running.filter((c) => c.state === "active").map((c) => c.id).join(",");
  useEffect(() => {
    if (!activeIds) return;
    Promise.all(
      activeIds.split(",").map((id) =>
        call<Schemas["ContractUsage"]>(didKey, "GET", `/v1/contracts/${id}/usage`).then((u) => [id, u] as const),
      ),
    )
      .then((pairs) => setUsage(Object.fromEntries(pairs)))
      .catch(() => setUsage({}));
  }, [didKey, activeIds, tick, changed]);

  // The document must name this provider, this contract and its offer before it is signed.
  const accept = (id: string) =>
    act("Accepting", async () => {
      const c = await call<Contract>(didKey, "GET", `/v1/contracts/${id}`);
      if (!c.document) throw new Error("the broker sent no document");
      const doc = JSON.parse(c.document) as { provider?: { did?: string }; contractId?: string; offerId?: string };
      if (doc.provider?.did !== didKey.did || doc.contractId !== id || doc.offerId !== c.offerId)
        throw new Error("the document does not name this provider and this contract; it is not signed");
      await call(didKey, "POST", `/v1/contracts/${id}/accept`, {
        body: { signature: sign(didKey, "mercato-contract-document/1", c.document) },
      });
      setTick((t) => t + 1);
      return `Contract ${id.slice(0, 12)}… accepted: it opens on chain.`;
    });

  return (
    <section aria-labelledby="provider-contracts-title">
      <h2 id="provider-contracts-title">Proposals</h2>
      {proposed.length === 0 ? (
        <p>No purchase waits for you.</p>
      ) : (
        <ul>
          {proposed.map((c) => (
            <li key={c.id} data-testid="proposal">
              <code>{c.id.slice(0, 12)}…</code> {c.offerId} / {c.planId} × {c.quantity}{" "}
              <button type="button" disabled={busy} onClick={() => void accept(c.id)}>
                Accept
              </button>
            </li>
          ))}
        </ul>
      )}
      <h2>Running contracts</h2>
      {running.length === 0 ? (
        <p>None.</p>
      ) : (
        <ul>
          {running.map((c) => (
            <li key={c.id} data-testid="running">
              <code>{c.id.slice(0, 12)}…</code> {c.offerId} / {c.planId} × {c.quantity}: {c.state}
              <UsageLine usage={usage[c.id]} />
            </li>
          ))}
        </ul>
      )}
      {message && (
        <p role="status" data-testid="proposals-message">
          {message}
        </p>
      )}
    </section>
  );
}

function UsageLine({ usage }: { usage: Schemas["ContractUsage"] | undefined }) {
  if (!usage) return null;
  return (
    <span data-testid="running-usage">
      {" "}
      — usage reported: {usage.records.length} record(s), {formatCredits(usage.total)} credits, of which{" "}
      {formatCredits(usage.settled)} settled
    </span>
  );
}

function Earnings({ didKey, changed }: { didKey: Key; changed: number }) {
  const [account, setAccount] = useState<Schemas["AccountInfo"] | null>(null);
  const [tick, setTick] = useState(0);
  const { message, busy, act } = useAction();
  const [evm] = useState(() => storedEvmKey());
  useEffect(() => {
    if (!evm) return;
    call<Schemas["AccountInfo"]>(didKey, "GET", `/v1/accounts/${evm.address}`)
      .then(setAccount)
      .catch(() => setAccount(null));
  }, [didKey, evm, tick, changed]);

  // The account signs withdraw(itself, everything earned); the broker only relays the bytes.
  const withdraw = () =>
    act("Withdrawing", async () => {
      if (!evm) throw new Error("your account key is not in this page; import it under Your keys");
      const [chain, info] = await Promise.all([
        ledger(),
        call<Schemas["AccountInfo"]>(didKey, "GET", `/v1/accounts/${evm.address}`),
      ]);
      if (BigInt(info.earnings) === 0n) throw new Error("there are no earnings to withdraw yet (charges are released after their challenge window)");
      const to = chain.contracts.marketplace as Address;
      const data = withdrawCall(evm.address, info.earnings);
      const terms = await call<Schemas["TxTerms"]>(didKey, "POST", "/v1/chain/transactions/terms", { body: { to, data } });
      const raw = await signOwnCall(evm, chain, terms, to, data);
      const done = await call<Schemas["Relayed"]>(didKey, "POST", "/v1/chain/transactions", { body: { raw } });
      setTick((t) => t + 1);
      return `Withdrew ${formatCredits(info.earnings)} credits to ${evm.address} (transaction ${done.txHash}).`;
    });

  return (
    <section aria-labelledby="earnings-title">
      <h2 id="earnings-title">Earnings</h2>
      {!evm ? (
        <p>Import your account key under Your keys to see and withdraw your earnings.</p>
      ) : (
        <>
          <p data-testid="earnings">
            {account
              ? `Withdrawable: ${formatCredits(account.earnings)} credits. Your account holds ${formatCredits(account.credits)} credits.`
              : "Reading your account…"}
          </p>
          <p>Charges become earnings when their challenge window ends; the withdrawal is a transaction your account signs here and pays the gas of.</p>
          <button type="button" disabled={busy} onClick={() => void withdraw()}>
            Withdraw earnings
          </button>
        </>
      )}
      {message && (
        <p role="status" data-testid="earnings-message">
          {message}
        </p>
      )}
    </section>
  );
}

