// The auditor explorer, over the broker's index of the ledger: how far it has read and its own
// check against the chain, contracts, a participant's token flows, settlement batches (a record's
// Merkle proof checked in this page against the root the chain recorded) and credentials. The
// full verification from the chain and the content store alone is `mercato audit verify`.
import { useEffect, useState } from "react";
import type { Schemas } from "../api/client";
import type { Key } from "../keys";
import { checkProof } from "../merkle";
import { formatCredits } from "../money";
import { call } from "../session";
import { RoleGate } from "./RoleGate";
import { explain } from "./Buy";

const when = (s: number) => new Date(s * 1000).toISOString().slice(0, 16).replace("T", " ");

export function Audit() {
  return (
    <RoleGate
      roles={["auditor", "operator"]}
      needs="The explorer needs an auditor's key in this page (an operator grants the role)"
      wrongRole={(role) => `This key is registered as ${role}: the explorer is for auditors and operators.`}
    >
      {(key) => (
        <section aria-labelledby="audit-title">
          <h1 id="audit-title">Ledger explorer</h1>
          <Status didKey={key} />
          <Contracts didKey={key} />
          <Settlements didKey={key} />
          <Flows didKey={key} />
          <Credentials didKey={key} />
        </section>
      )}
    </RoleGate>
  );
}

function useGet<T>(didKey: Key, path: string | null): T | null {
  const [value, setValue] = useState<T | null>(null);
  useEffect(() => {
    if (path) call<T>(didKey, "GET", path).then(setValue, () => setValue(null));
  }, [didKey, path]);
  return value;
}

function Status({ didKey }: { didKey: Key }) {
  const index = useGet<Schemas["IndexStatus"]>(didKey, "/v1/audit/index");
  const check = useGet<Schemas["SelfCheck"]>(didKey, "/v1/audit/selfcheck");
  return (
    <section aria-labelledby="status-title">
      <h2 id="status-title">Ledger and index</h2>
      {index && (
        <p data-testid="index-status">
          Chain {index.chainId}: head {index.head}, indexed up to block {index.nextBlock - 1} ({index.events} events,{" "}
          {index.confirmations} confirmations, {index.reorgs.length} reorganisations rolled back).
        </p>
      )}
      {check && (
        <p data-testid="selfcheck" className={check.agrees ? undefined : "failure"}>
          {check.agrees
            ? `The index agrees with the chain through block ${check.throughBlock}: every event kind counted on both.`
            : `The index DISAGREES with the chain through block ${check.throughBlock}.`}
        </p>
      )}
      <p data-testid="verify-hint">
        These checks are the broker&apos;s own. The verification report that needs nothing from the broker re-derives every
        contract, payment, settlement, credential and configuration from the chain and the content store; run it with
        your own node: <code>mercato audit verify --rpc-url CHAIN_URL --deployment deployment.json --content-dir DIR</code>{" "}
        (or <code>--ipfs-api URL</code> for an IPFS node).
      </p>
    </section>
  );
}

function Contracts({ didKey }: { didKey: Key }) {
  const page = useGet<Schemas["AuditContractPage"]>(didKey, "/v1/audit/contracts?limit=50");
  return (
    <section aria-labelledby="audit-contracts-title">
      <h2 id="audit-contracts-title">Contracts</h2>
      {!page || page.items.length === 0 ? (
        <p>None on chain.</p>
      ) : (
        <table className="results">
          <thead>
            <tr>
              <th scope="col">Contract</th>
              <th scope="col">State</th>
              <th scope="col">Deposit</th>
              <th scope="col">Charged</th>
              <th scope="col">Escrow</th>
              <th scope="col">Consumer / provider</th>
            </tr>
          </thead>
          <tbody>
            {page.items.map((c) => (
              <tr key={c.contractId} data-testid="audit-contract">
                <td>
                  <code title={c.contractId}>{c.contractId.slice(0, 12)}…</code>
                </td>
                <td>{c.state}</td>
                <td>{formatCredits(c.deposit)}</td>
                <td>{formatCredits(c.charged)}</td>
                <td>{formatCredits(c.escrow)}</td>
                <td>
                  <code>{c.consumer.slice(0, 10)}…</code> / <code>{c.provider.slice(0, 10)}…</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Settlements({ didKey }: { didKey: Key }) {
  const page = useGet<Schemas["SettlementPage"]>(didKey, "/v1/audit/settlements?limit=50");
  const [result, setResult] = useState<string | null>(null);

  // A record of the batch (from the first contract charged in it), its proof, checked here.
  const prove = async (b: Schemas["AuditBatch"]) => {
    setResult(null);
    try {
      const charge = b.charges[0];
      if (!charge) throw new Error("the batch charged no contract");
      const usage = await call<Schemas["ContractUsage"]>(didKey, "GET", `/v1/contracts/${charge.contractId}/usage`);
      const record = usage.records.find((r) => r.batchId === b.batchId);
      if (!record) throw new Error("the broker lists no record of this batch for its contract");
      const proof = await call<Schemas["UsageProof"]>(didKey, "GET", `/v1/usage/${record.record.id}/proof`);
      const sum = checkProof(b.merkleRoot, proof);
      setResult(
        sum === null
          ? `The proof of record ${record.record.id} does NOT lead to the batch's root ${b.merkleRoot}.`
          : `Checked in this page: record ${record.record.id} (${formatCredits(proof.amount)} credits) leads to root ${b.merkleRoot}, which the chain recorded in block ${b.block}; its contract's records sum to ${formatCredits(sum.toString())} credits.`,
      );
    } catch (e) {
      setResult(`No proof: ${explain(e)}`);
    }
  };

  return (
    <section aria-labelledby="settlements-title">
      <h2 id="settlements-title">Settlements</h2>
      {!page || page.items.length === 0 ? (
        <p>No batch settled yet.</p>
      ) : (
        <table className="results">
          <thead>
            <tr>
              <th scope="col">Batch</th>
              <th scope="col">Settled</th>
              <th scope="col">Records</th>
              <th scope="col">Total</th>
              <th scope="col">Root</th>
              <th scope="col" />
            </tr>
          </thead>
          <tbody>
            {page.items.map((b) => (
              <tr key={b.batchId} data-testid="batch">
                <td>
                  <code title={b.batchId}>{b.batchId.slice(0, 12)}…</code>
                </td>
                <td>
                  {when(b.at)} UTC, block {b.block}
                </td>
                <td>{b.recordCount}</td>
                <td>{formatCredits(b.total)}</td>
                <td>
                  <code title={b.merkleRoot}>{b.merkleRoot.slice(0, 12)}…</code>
                </td>
                <td>
                  <button type="button" onClick={() => void prove(b)}>
                    Check a record's proof
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {result && (
        <p role="status" data-testid="proof-result">
          {result}
        </p>
      )}
    </section>
  );
}

function Flows({ didKey }: { didKey: Key }) {
  const [participant, setParticipant] = useState("");
  const [asked, setAsked] = useState<string | null>(null);
  const page = useGet<Schemas["FlowPage"]>(
    didKey,
    asked ? `/v1/audit/flows?participant=${encodeURIComponent(asked)}&limit=100` : null,
  );
  return (
    <section aria-labelledby="flows-title">
      <h2 id="flows-title">Token flows</h2>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setAsked(participant.trim() || null);
        }}
      >
        <label>
          Participant (did or account)
          <input value={participant} onChange={(e) => setParticipant(e.target.value)} />
        </label>
        <button type="submit">Show flows</button>
      </form>
      {page && (
        <table className="results">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Kind</th>
              <th scope="col">Amount</th>
              <th scope="col">Contract</th>
              <th scope="col">Transaction</th>
            </tr>
          </thead>
          <tbody>
            {page.items.map((f) => (
              <tr key={`${f.tx}-${f.logIndex}`} data-testid="flow">
                <td>{when(f.at)} UTC</td>
                <td>{f.kind}</td>
                <td>{formatCredits(f.amount)}</td>
                <td>{f.contractId ? <code>{f.contractId.slice(0, 12)}…</code> : "—"}</td>
                <td>
                  <code title={f.tx}>{f.tx.slice(0, 12)}…</code> #{f.logIndex}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Credentials({ didKey }: { didKey: Key }) {
  const page = useGet<Schemas["CredentialAuditPage"]>(didKey, "/v1/audit/credentials?limit=50");
  return (
    <section aria-labelledby="audit-credentials-title">
      <h2 id="audit-credentials-title">Certified-metric credentials</h2>
      <p>{page ? `${page.items.length} anchored on chain (newest 50).` : "None."}</p>
    </section>
  );
}
