// The participant's contracts, kept live by the event stream: state, escrow runway with its
// warning, top-up (signed here), close with the refund it gives, the peering credential (opened
// here, it is sealed to this key), usage as it accrues with dispute, statement with CSV.
import { useCallback, useEffect, useState } from "react";
import type { Schemas } from "../api/client";
import { openCredential } from "../credential";
import { OPENED, useEvents } from "../events";
import { signTopUp, storedEvmKey } from "../evm";
import { storedKey, type Key } from "../keys";
import { formatCredits, formatDuration, formatSpan, parseCredits } from "../money";
import { go } from "../router";
import { call, ledger } from "../session";
import { download } from "./AccountKey";
import { explain, TxLink } from "./Buy";

type Contract = Schemas["Contract"];

const when = (s: number) => new Date(s * 1000).toISOString().slice(0, 16).replace("T", " ");

export function Contracts() {
  const [key] = useState(() => storedKey());
  const [contracts, setContracts] = useState<Contract[] | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  // Bumped by every event about contracts, usage or credentials: the page reads them again.
  const [tick, setTick] = useState(0);
  const reload = useCallback(async () => setTick((t) => t + 1), []);
  useEffect(() => {
    if (!key) return;
    call<Contract[]>(key, "GET", "/v1/contracts?limit=100")
      .then((list) => {
        setContracts(list);
        setFailure(null);
      })
      .catch((e: unknown) => setFailure(explain(e)));
  }, [key, tick]);
  useEvents(key, (e) => {
    if (e.topic === OPENED || /^(contract|usage|credential)\./.test(e.topic)) void reload();
  });

  if (!key)
    return (
      <p className="notice">
        Your contracts show once your keys are in this page:{" "}
        <a href="/account" onClick={(e) => (e.preventDefault(), go({ page: "account" }))}>
          Your keys
        </a>
        .
      </p>
    );
  return (
    <section aria-labelledby="contracts-title">
      <h1 id="contracts-title">Your contracts</h1>
      {failure && (
        <p role="alert" className="failure">
          {failure}
        </p>
      )}
      {contracts === null ? (
        <p aria-live="polite">Loading your contracts…</p>
      ) : contracts.length === 0 ? (
        <p>None yet: buy a plan in the marketplace.</p>
      ) : (
        <table className="results">
          <thead>
            <tr>
              <th scope="col">Contract</th>
              <th scope="col">Offer / plan</th>
              <th scope="col">Quantity</th>
              <th scope="col">State</th>
              <th scope="col">Bought</th>
              <th scope="col">Updated</th>
              <th scope="col" />
            </tr>
          </thead>
          <tbody>
            {contracts.map((c) => (
              <tr key={c.id} data-testid="contract-row">
                <td>
                  <code title={c.id}>{c.id.slice(0, 12)}…</code>
                </td>
                <td>
                  {c.offerId} / {c.planId}
                </td>
                <td>{c.quantity}</td>
                <td data-testid="contract-row-state">{c.state}</td>
                <td>{when(c.createdAt)} UTC</td>
                <td>{when(c.updatedAt)} UTC</td>
                <td>
                  <button type="button" aria-expanded={open === c.id} onClick={() => setOpen(open === c.id ? null : c.id)}>
                    {open === c.id ? "Hide" : "Details"}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {open && contracts?.find((c) => c.id === open) && (
        <ContractDetail key={open} didKey={key} contract={contracts.find((c) => c.id === open) as Contract} tick={tick} onChange={reload} />
      )}
    </section>
  );
}

interface Detail {
  /** The contract with the chain's view of it (the list has none). */
  full: Contract | null;
  escrow: Schemas["EscrowView"] | null;
  usage: Schemas["ContractUsage"] | null;
  statement: Schemas["Statement"] | null;
}

function ContractDetail({
  didKey,
  contract: c,
  tick,
  onChange,
}: {
  didKey: Key;
  contract: Contract;
  tick: number;
  onChange: () => Promise<void>;
}) {
  const [detail, setDetail] = useState<Detail>({ full: null, escrow: null, usage: null, statement: null });
  const [amount, setAmount] = useState("");
  const [message, setMessage] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const mine = c.consumer === didKey.did;
  const live = c.state === "active";

  useEffect(() => {
    const path = `/v1/contracts/${c.id}`;
    const get = <T,>(p: string) => call<T>(didKey, "GET", p).catch(() => null);
    const onChain = c.state === "active" || c.state === "closing" || c.state === "closed";
    void Promise.all([
      get<Contract>(path),
      live ? get<Schemas["EscrowView"]>(`${path}/escrow`) : null,
      get<Schemas["ContractUsage"]>(`${path}/usage`),
      onChain ? get<Schemas["Statement"]>(`${path}/statement`) : null,
    ]).then(([full, escrow, usage, statement]) => setDetail({ full, escrow, usage, statement }));
  }, [c.id, c.state, didKey, live, tick]);

  const act = async (what: string, run: () => Promise<string>) => {
    setBusy(true);
    setMessage(null);
    try {
      setMessage(await run());
      await onChange();
    } catch (e) {
      setMessage(`${what} failed: ${explain(e)}`);
    } finally {
      setBusy(false);
    }
  };

  const topUp = () =>
    act("The top-up", async () => {
      const parsed = parseCredits(amount);
      if (!parsed.ok) throw new Error(parsed.error);
      if (parsed.base === "0") throw new Error("a top-up adds more than 0 credits");
      const evm = storedEvmKey();
      if (!evm) throw new Error("your account key is not in this page; import it under Your keys");
      const escrow = await call<Schemas["EscrowView"]>(didKey, "GET", `/v1/contracts/${c.id}/escrow`);
      const deadline = Math.floor(Date.now() / 1000) + 600;
      const [topUpSignature, permitSignature] = await signTopUp(evm, await ledger(), c.id, parsed.base, escrow, deadline);
      await call(didKey, "POST", `/v1/contracts/${c.id}/topup`, {
        body: { amount: parsed.base, deadline, topUpSignature, permitSignature },
      });
      setAmount("");
      return `${formatCredits(parsed.base)} credits added to the escrow.`;
    });

  const close = () =>
    act("Closing", async () => {
      await call(didKey, "POST", `/v1/contracts/${c.id}/close`);
      return "Closing on chain: the unused escrow returns to your account.";
    });

  const credential = () =>
    act("The credential", async () => {
      const list = await call<Schemas["CredentialInfo"][]>(didKey, "GET", `/v1/contracts/${c.id}/credentials`);
      const newest = list.find((x) => !x.revokedAt);
      if (!newest) throw new Error("the contract has no working credential (revoked or not issued yet)");
      const chain = await ledger();
      const text = openCredential(didKey, newest.sealed, chain.brokerDid);
      download(`credential-${c.id.slice(2, 10)}.json`, text, "application/json");
      return `Credential version ${newest.version} saved. Connect with: mercato connect ${c.id} --credential FILE`;
    });

  const csv = () =>
    act("The statement", async () => {
      const text = await call<string>(didKey, "GET", `/v1/contracts/${c.id}/statement?format=csv`, { raw: true });
      download(`statement-${c.id.slice(2, 10)}.csv`, text, "text/csv");
      return "Statement saved as CSV.";
    });

  const dispute = (record: string) =>
    act("The dispute", async () => {
      const reason = window.prompt("Why is this record wrong?");
      if (!reason) throw new Error("a dispute needs a reason");
      await call(didKey, "POST", `/v1/usage/${record}/dispute`, { body: { reason } });
      return "Disputed: the record is held out of settlement until an operator decides.";
    });

  const runway = detail.escrow?.runway;
  const chain = detail.full?.chain;
  return (
    <section aria-labelledby="detail-title" data-testid="contract-detail">
      <h2 id="detail-title">
        Contract <code>{c.id}</code>
      </h2>
      <dl className="facts">
        <dt>State</dt>
        <dd>{c.state}</dd>
        {c.txHash && (
          <>
            <dt>Last transaction</dt>
            <dd>
              <TxLink hash={c.txHash} />
            </dd>
          </>
        )}
        {c.failure && (
          <>
            <dt>Failure</dt>
            <dd>{c.failure} (no credit moved)</dd>
          </>
        )}
        {c.refund && (
          <>
            <dt>Refunded</dt>
            <dd>{formatCredits(c.refund)} credits</dd>
          </>
        )}
        {chain && (
          <>
            <dt>On chain</dt>
            <dd data-testid="chain">
              {chain.status}: {formatCredits(chain.escrow)} credits in escrow, {formatCredits(chain.charged)} charged
              {chain.periodPrice !== "0" ? `, ${formatCredits(chain.periodPrice)} per ${formatDuration(chain.period)}` : ""}
            </dd>
          </>
        )}
        {runway && (
          <>
            <dt>Runway</dt>
            <dd data-testid="runway">
              {formatCredits(runway.available)} credits available ({formatCredits(runway.pending)} pending settlement), using{" "}
              {formatCredits(runway.ratePerHour)} per hour
              {runway.secondsLeft != null ? `, lasts about ${formatSpan(runway.secondsLeft)}` : ""}
            </dd>
          </>
        )}
      </dl>
      {runway?.suspended && (
        <p role="alert" className="failure">
          Suspended: the escrow cannot pay. Top it up to resume.
        </p>
      )}
      {runway?.warning && !runway.suspended && (
        <p role="alert" className="warning">
          The escrow runs low: top it up before it runs out.
        </p>
      )}
      {mine && live && (
        <div className="filters">
          <label>
            Top up (credits)
            <input name="topup" inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} />
          </label>
          <button type="button" disabled={busy} onClick={() => void topUp()}>
            Top up
          </button>
          <button type="button" disabled={busy} onClick={() => void credential()}>
            Download credential
          </button>
          <button type="button" disabled={busy} onClick={() => void close()}>
            Close{runway ? ` (about ${formatCredits(runway.available)} credits back)` : ""}
          </button>
        </div>
      )}
      {message && (
        <p role="status" data-testid="contract-message">
          {message}
        </p>
      )}
      <h3>Usage</h3>
      {!detail.usage || detail.usage.records.length === 0 ? (
        <p>No usage reported.</p>
      ) : (
        <table className="results">
          <thead>
            <tr>
              <th scope="col">From</th>
              <th scope="col">Connected</th>
              <th scope="col">Traffic</th>
              <th scope="col">Amount</th>
              <th scope="col">Settled</th>
              <th scope="col" />
            </tr>
          </thead>
          <tbody>
            {detail.usage.records.map((u) => (
              <tr key={u.record.id}>
                <td>{when(u.record.from)}</td>
                <td>{formatDuration(Math.round(u.record.connectionMillis / 1000))}</td>
                <td>{((u.record.bytesIn + u.record.bytesOut) / 1e6).toFixed(2)} MB</td>
                <td>{formatCredits(u.amount)}</td>
                <td>{u.batchId ? "yes" : u.dispute ? `disputed (${u.dispute})` : "pending"}</td>
                <td>
                  {mine && !u.batchId && !u.dispute && (
                    <button type="button" disabled={busy} onClick={() => void dispute(u.record.id)}>
                      Dispute
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>Statement</h3>
      {detail.statement ? (
        <>
          <p data-testid="statement">
            Charged {formatCredits(detail.statement.charged)} credits; the chain says{" "}
            {formatCredits(detail.statement.chainCharged)} charged, {formatCredits(detail.statement.chainEscrow)} in escrow —{" "}
            {detail.statement.matchesChain ? "it matches the chain." : "it does NOT match the chain."}
          </p>
          <button type="button" disabled={busy} onClick={() => void csv()}>
            Download CSV
          </button>
        </>
      ) : (
        <p>No statement until the contract is on chain.</p>
      )}
    </section>
  );
}
