// The participant's keys, in this page only: create (and register) or import a CLI key file,
// download it, forget it. Logging in signs the broker's challenge here.
import { useEffect, useState, type ChangeEvent } from "react";
import { ApiError, type Schemas } from "../api/client";
import { createKey, forgetKey, keepKey, keyFileText, parseKeyFile, storedKey, type Key } from "../keys";
import { forgetEvmKey } from "../evm";
import { forgetSession, register, session } from "../session";
import { AccountKey, download } from "./AccountKey";

type Role = "consumer" | "provider";

export function Account() {
  const [key, setKey] = useState<Key | null>(() => storedKey());
  const [role, setRole] = useState<Schemas["Role"] | null>(null);
  const [newRole, setNewRole] = useState<Role>("consumer");
  const [message, setMessage] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  // A key kept in this tab logs in again when the page is opened anew.
  useEffect(() => {
    if (key && !role)
      session(key)
        .then((t) => setRole(t.role))
        .catch((e: unknown) => setMessage(`Could not log in: ${e instanceof Error ? e.message : String(e)}`));
  }, [key, role]);

  const explain = (e: unknown) =>
    e instanceof ApiError ? e.message : e instanceof Error ? e.message : String(e);

  const signIn = async (k: Key) => {
    const token = await session(k);
    keepKey(k);
    setKey(k);
    setRole(token.role);
  };

  const create = async () => {
    setBusy(true);
    setMessage(null);
    try {
      const k = createKey();
      await register(k, newRole);
      await signIn(k);
      setMessage("Keys created and registered. Download the key file now: it is the only copy.");
    } catch (e) {
      setMessage(`Could not register: ${explain(e)}`);
    } finally {
      setBusy(false);
    }
  };

  const importFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    e.target.value = "";
    if (!file) return;
    setMessage(null);
    const parsed = parseKeyFile(await file.text());
    if (!parsed.ok) return setMessage(parsed.error);
    setBusy(true);
    try {
      await signIn(parsed.key);
    } catch (err) {
      const why = explain(err);
      setMessage(
        err instanceof ApiError && err.status === 404
          ? `This key (${parsed.key.did}) is not registered with this broker: create keys here, or register it with the CLI (mercato register).`
          : `Could not log in: ${why}`,
      );
    } finally {
      setBusy(false);
    }
  };

  const forget = () => {
    forgetKey();
    forgetEvmKey();
    forgetSession();
    setKey(null);
    setRole(null);
    setMessage("The key is forgotten in this page. Keep your key file to come back.");
  };

  return (
    <section aria-labelledby="account-title">
      <h1 id="account-title">Your keys</h1>
      <p>
        Your key signs your logins and documents in this page; it never leaves it. It is kept in this tab only (session
        storage): closing the tab or “Forget” removes it. The key file is the same the <code>mercato</code> CLI reads
        (<code>--key-file</code>).
      </p>
      {key ? (
        <>
          <p data-testid="did">
            Your did: <code>{key.did}</code>
          </p>
          <p data-testid="role">{role ? `Logged in as ${role}.` : "Not logged in yet."}</p>
          <button type="button" onClick={() => download("mercato-key.hex", keyFileText(key))}>
            Download key file
          </button>{" "}
          <button type="button" onClick={forget}>
            Forget the keys
          </button>
          {role && role !== "auditor" && role !== "operator" && <AccountKey didKey={key} role={role} />}
        </>
      ) : (
        <div className="filters">
          <label>
            Role
            <select value={newRole} onChange={(e) => setNewRole(e.target.value as Role)}>
              <option value="consumer">consumer</option>
              <option value="provider">provider</option>
            </select>
          </label>
          <button type="button" onClick={create} disabled={busy}>
            Create keys and register
          </button>
          <label>
            Import a key file
            <input type="file" accept=".hex,text/plain" onChange={importFile} disabled={busy} />
          </label>
        </div>
      )}
      {message && (
        <p role="status" data-testid="account-message">
          {message}
        </p>
      )}
    </section>
  );
}
