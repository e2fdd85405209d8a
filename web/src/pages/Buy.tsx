// Buying one plan: the amounts (typed in credits), the reservation's terms to review with every
// check's result, the signatures made here, and the contract's progress until it is active on
// chain (followed over the event stream).
import { useState } from "react";
import { ApiError, type Schemas } from "../api/client";
import { OPENED, useEvents } from "../events";
import { storedEvmKey } from "../evm";
import { storedKey } from "../keys";
import { formatCredits, formatDuration, parseCredits } from "../money";
import { checkReservation, purchase, type Reservation, type ReserveRequest } from "../purchase";
import { go } from "../router";
import { call } from "../session";

type Plan = Schemas["Plan"];
type Contract = Schemas["Contract"];

export const explain = (e: unknown) => (e instanceof Error ? e.message : String(e));

type Stage =
  | { step: "form" }
  | { step: "review"; asked: ReserveRequest; reservation: Reservation; faults: string[] }
  | { step: "buying"; contract: Contract | null; reservation: Reservation };

export function TxLink({ hash }: { hash: string }) {
  return (
    <code title={hash} data-testid="tx">
      {hash}
    </code>
  );
}

export function Buy({ offerId, plan }: { offerId: string; plan: Plan }) {
  const [key] = useState(() => storedKey());
  const [evm] = useState(() => storedEvmKey());
  const [quantity, setQuantity] = useState("1");
  const [periods, setPeriods] = useState("1");
  const [deposit, setDeposit] = useState("");
  const [usageCap, setUsageCap] = useState("");
  const [errors, setErrors] = useState<string[]>([]);
  const [stage, setStage] = useState<Stage>({ step: "form" });
  const [busy, setBusy] = useState(false);
  const payPerUse = !plan.pricing.reserved;
  const contractId = stage.step === "buying" ? stage.reservation.terms.contractId : null;

  const refresh = async () => {
    if (!key || stage.step !== "buying") return;
    const c = await call<Contract>(key, "GET", `/v1/contracts/${stage.reservation.terms.contractId}`);
    setStage({ ...stage, contract: c });
  };
  useEvents(contractId ? key : null, (e) => {
    const subject = (e.data as { subject?: string } | null)?.subject;
    if (e.topic === OPENED || (e.topic.startsWith("contract.") && subject === contractId))
      void refresh().catch(() => undefined);
  });

  if (!key || !evm)
    return (
      <p className="notice">
        To buy, create or import your keys and your account key first:{" "}
        <a href="/account" onClick={(e) => (e.preventDefault(), go({ page: "account" }))}>
          Your keys
        </a>
        .
      </p>
    );

  const reserve = async () => {
    const found: string[] = [];
    const q = Number(quantity);
    if (!Number.isInteger(q) || q < 1 || q > plan.capacity) found.push(`Quantity: a whole number from 1 to ${plan.capacity}.`);
    const asked: ReserveRequest = { offerId, planId: plan.id, quantity: q };
    if (!payPerUse) {
      const p = Number(periods);
      if (!Number.isInteger(p) || p < 1 || p > 1000) found.push("Periods: a whole number from 1 to 1000.");
      asked.periods = p;
    }
    if (deposit.trim() || payPerUse) {
      const d = parseCredits(deposit);
      if (!d.ok) found.push(`Deposit: ${d.error}.`);
      else if (d.base === "0" && payPerUse) found.push("Deposit: a pay-per-use plan needs a deposit above 0.");
      else asked.deposit = d.base;
    }
    if (usageCap.trim()) {
      const c = parseCredits(usageCap);
      if (!c.ok) found.push(`Usage cap: ${c.error}.`);
      else asked.usageCap = c.base;
    }
    setErrors(found);
    if (found.length) return;
    setBusy(true);
    try {
      const reservation = await call<Reservation>(key, "POST", "/v1/reservations", { body: asked });
      const faults = await checkReservation(key, evm, asked, reservation);
      setStage({ step: "review", asked, reservation, faults });
    } catch (e) {
      setErrors([`The reservation failed: ${explain(e)}`]);
    } finally {
      setBusy(false);
    }
  };

  const buy = async (reservation: Reservation) => {
    setBusy(true);
    setErrors([]);
    try {
      const contract = await purchase(key, evm, reservation);
      setStage({ step: "buying", reservation, contract });
    } catch (e) {
      const why = explain(e);
      setErrors([
        e instanceof ApiError && e.status === 0
          ? `${why}. Nothing is charged twice: buying again sends the same request, which the broker answers once.`
          : `The purchase was refused: ${why}`,
      ]);
    } finally {
      setBusy(false);
    }
  };

  const errorList = errors.length > 0 && (
    <ul role="alert" className="failure" data-testid="buy-errors">
      {errors.map((e) => (
        <li key={e}>{e}</li>
      ))}
    </ul>
  );

  if (stage.step === "buying") {
    const c = stage.contract;
    const state = c?.state ?? "proposed";
    return (
      <section aria-live="polite" data-testid="purchase-progress">
        <h3>Contract {stage.reservation.terms.contractId.slice(0, 12)}…</h3>
        <ol className="progress">
          {(["proposed", "accepted", "opening", "active"] as const).map((s) => (
            <li key={s} aria-current={s === state ? "step" : undefined}>
              {s}
            </li>
          ))}
        </ol>
        <p data-testid="contract-state">State: {state}</p>
        {state === "proposed" && <p>Waiting for the provider to sign the document.</p>}
        {state === "active" && c?.txHash && (
          <p>
            Active on chain, transaction <TxLink hash={c.txHash} />.{" "}
            <a href="/contracts" onClick={(e) => (e.preventDefault(), go({ page: "contracts" }))}>
              Your contracts
            </a>
          </p>
        )}
        {state === "failed" && (
          <p role="alert" className="failure">
            The purchase failed: {c?.failure ?? "no reason given"}. No credit moved.
          </p>
        )}
        <button type="button" onClick={() => void refresh()}>
          Refresh
        </button>
        {errorList}
      </section>
    );
  }

  if (stage.step === "review") {
    const { reservation: r, faults } = stage;
    const t = r.terms;
    return (
      <section data-testid="review">
        <h3>Review the terms before you sign</h3>
        <dl className="facts">
          <dt>Contract</dt>
          <dd>
            <code>{t.contractId}</code>
          </dd>
          <dt>Deposit (escrowed now)</dt>
          <dd data-testid="review-deposit">{formatCredits(t.deposit)} credits</dd>
          {t.periodPrice !== "0" && (
            <>
              <dt>Price per period</dt>
              <dd>
                {formatCredits(t.periodPrice)} credits / {formatDuration(t.period)}
              </dd>
            </>
          )}
          {t.usageCap !== "0" && (
            <>
              <dt>Usage charged at most</dt>
              <dd>
                {formatCredits(t.usageCap)} credits per {formatDuration(t.capWindow)}
              </dd>
            </>
          )}
          <dt>Paid to</dt>
          <dd>
            <code>{t.provider}</code>
          </dd>
          <dt>Signatures valid until</dt>
          <dd>{new Date(t.deadline * 1000).toISOString().slice(0, 16).replace("T", " ")} UTC</dd>
          <dt>Document</dt>
          <dd>
            <code>{t.termsCid}</code>
          </dd>
        </dl>
        {faults.length > 0 ? (
          <div role="alert" className="failure" data-testid="review-faults">
            <p>The broker's reservation does not match what you asked; do not sign it. It differs in:</p>
            <ul>
              {faults.map((f) => (
                <li key={f}>{f}</li>
              ))}
            </ul>
          </div>
        ) : (
          <p data-testid="review-ok">
            Checked here: the document, the amounts, the parties, the chain and the deadline are what you asked for.
          </p>
        )}
        <button type="button" disabled={busy || faults.length > 0} onClick={() => void buy(r)}>
          Sign and buy
        </button>{" "}
        <button type="button" disabled={busy} onClick={() => setStage({ step: "form" })}>
          Cancel
        </button>
        {errorList}
      </section>
    );
  }

  return (
    <form
      className="filters"
      aria-label={`Buy ${plan.name}`}
      onSubmit={(e) => {
        e.preventDefault();
        void reserve();
      }}
    >
      <label>
        Quantity
        <input name="quantity" inputMode="numeric" value={quantity} onChange={(e) => setQuantity(e.target.value)} />
      </label>
      {payPerUse ? (
        <>
          <label>
            Deposit (credits)
            <input name="deposit" inputMode="decimal" value={deposit} onChange={(e) => setDeposit(e.target.value)} />
          </label>
          <label>
            Usage cap per hour (credits; default: the deposit)
            <input name="usageCap" inputMode="decimal" value={usageCap} onChange={(e) => setUsageCap(e.target.value)} />
          </label>
        </>
      ) : (
        <label>
          Periods to pay in advance
          <input name="periods" inputMode="numeric" value={periods} onChange={(e) => setPeriods(e.target.value)} />
        </label>
      )}
      <button type="submit" disabled={busy}>
        Reserve and review
      </button>
      {errorList}
    </form>
  );
}

