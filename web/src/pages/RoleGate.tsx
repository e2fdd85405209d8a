// The pages for one role: the key in this page, logged in, with one of `roles`; otherwise a
// message that says what is missing and where to get it.
import { useEffect, useState, type ReactNode } from "react";
import type { Schemas } from "../api/client";
import { storedKey, type Key } from "../keys";
import { go } from "../router";
import { session } from "../session";
import { explain } from "./Buy";

type Role = Schemas["Role"];

export function RoleGate({
  roles,
  needs,
  wrongRole,
  children,
}: {
  roles: Role[];
  /** What the page needs, for the notice shown without a key. */
  needs: string;
  wrongRole: (role: Role) => string;
  children: (key: Key) => ReactNode;
}) {
  const [key] = useState(() => storedKey());
  const [role, setRole] = useState<Role | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  useEffect(() => {
    if (key)
      session(key)
        .then((s) => setRole(s.role))
        .catch((e: unknown) => setFailure(explain(e)));
  }, [key]);
  if (!key || failure)
    return (
      <p className="notice">
        {failure ? `${failure}. ` : ""}
        {needs}:{" "}
        <a href="/account" onClick={(e) => (e.preventDefault(), go({ page: "account" }))}>
          Your keys
        </a>
        .
      </p>
    );
  if (role === null) return <p aria-live="polite">Logging in…</p>;
  if (!roles.includes(role))
    return (
      <p role="alert" className="failure" data-testid="wrong-role">
        {wrongRole(role)}
      </p>
    );
  return children(key);
}
