// The EVM account key beside the did key: create or import (the CLI's evm-<name> file), download,
// link on chain (the account signs its consent here), credits from the development faucet.
import { useEffect, useState, type ChangeEvent } from "react";
import type { Schemas } from "../api/client";
import {
  createEvmKey,
  evmKeyFileText,
  keepEvmKey,
  parseEvmKeyFile,
  signLink,
  storedEvmKey,
  type EvmKey,
} from "../evm";
import type { Key } from "../keys";
import { formatCredits } from "../money";
import { call, ledger } from "../session";
import { explain } from "./Buy";

const ROLE_NUMBER = { provider: 1, consumer: 2, auditor: 3, operator: 4 } as const;

export function download(name: string, text: string, type = "text/plain") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  URL.revokeObjectURL(url);
}

export function AccountKey({ didKey, role }: { didKey: Key; role: Schemas["Role"] }) {
  const [evm, setEvm] = useState<EvmKey | null>(() => storedEvmKey());
  const [info, setInfo] = useState<Schemas["AccountInfo"] | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const [version, setVersion] = useState(0);
  useEffect(() => {
    if (!evm) return;
    call<Schemas["AccountInfo"]>(didKey, "GET", `/v1/accounts/${evm.address}`)
      .then(setInfo)
      .catch((e: unknown) => setMessage(explain(e)));
  }, [didKey, evm, version]);

  const adopt = (k: EvmKey) => {
    keepEvmKey(k);
    setEvm(k);
  };

  const importFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    e.target.value = "";
    if (!file) return;
    const parsed = parseEvmKeyFile(await file.text());
    if (!parsed.ok) return setMessage(parsed.error);
    setMessage(null);
    adopt(parsed.key);
  };

  const act = async (what: string, run: (k: EvmKey) => Promise<string>) => {
    if (!evm) return;
    setBusy(true);
    setMessage(null);
    try {
      setMessage(await run(evm));
      setVersion((v) => v + 1);
    } catch (e) {
      setMessage(`${what} failed: ${explain(e)}`);
    } finally {
      setBusy(false);
    }
  };

  const link = (k: EvmKey) =>
    act("Linking", async () => {
      const [chain, current] = await Promise.all([
        ledger(),
        call<Schemas["AccountInfo"]>(didKey, "GET", `/v1/accounts/${k.address}`),
      ]);
      const deadline = Math.floor(Date.now() / 1000) + 600;
      const signature = await signLink(k, chain, didKey.did, ROLE_NUMBER[role], current.registryNonce, deadline);
      const linked = await call<Schemas["Linked"]>(didKey, "POST", "/v1/participants/me/account", {
        body: { account: k.address, deadline, signature },
      });
      return linked.txHash ? `Linked on chain (transaction ${linked.txHash}).` : "Already linked on chain.";
    });

  const faucet = () =>
    act("The faucet", async () => {
      const grant = await call<Schemas["FaucetGrant"]>(didKey, "POST", "/v1/faucet");
      return `${formatCredits(grant.minted)} credits minted to your account.`;
    });

  return (
    <section aria-labelledby="evm-title">
      <h2 id="evm-title">Your account on chain</h2>
      <p>
        An EVM account key signs what moves your credits: purchases, deposits, top-ups. It is kept beside your did key in
        this tab and forgotten with it; its file is the CLI's <code>evm-</code> file beside the key file.
      </p>
      {evm ? (
        <>
          <p data-testid="evm-address">
            Account: <code>{evm.address}</code>
          </p>
          {info && (
            <p data-testid="evm-info">
              {info.did === didKey.did
                ? `Linked to your did. Credits: ${formatCredits(info.credits)}.`
                : info.did
                  ? "Linked to another did: this account cannot be yours here."
                  : "Not linked yet."}
            </p>
          )}
          <button type="button" onClick={() => download("evm-mercato-key.hex", evmKeyFileText(evm))}>
            Download account key file
          </button>{" "}
          {info && !info.did && (
            <button type="button" disabled={busy} onClick={() => void link(evm)}>
              Link this account
            </button>
          )}{" "}
          {info?.did === didKey.did && (
            <button type="button" disabled={busy} onClick={() => void faucet()}>
              Get credits (development faucet)
            </button>
          )}
        </>
      ) : (
        <div className="filters">
          <button type="button" onClick={() => adopt(createEvmKey())}>
            Create an account key
          </button>
          <label>
            Import an account key file
            <input type="file" accept=".hex,text/plain" onChange={importFile} />
          </label>
        </div>
      )}
      {message && (
        <p role="status" data-testid="evm-message">
          {message}
        </p>
      )}
    </section>
  );
}
