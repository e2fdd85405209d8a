import { lazy, Suspense } from "react";
import { Marketplace } from "./pages/Marketplace";
import { OfferDetail } from "./pages/OfferDetail";
import { go, href, useRoute } from "./router";

// Pages that sign (and the EVM library they need) load when first opened, so the marketplace's
// first page stays small.
const Account = lazy(() => import("./pages/Account").then((m) => ({ default: m.Account })));
const Contracts = lazy(() => import("./pages/Contracts").then((m) => ({ default: m.Contracts })));
const Provider = lazy(() => import("./pages/Provider").then((m) => ({ default: m.Provider })));
const Audit = lazy(() => import("./pages/Audit").then((m) => ({ default: m.Audit })));

const LINKS = [
  ["contracts", "Your contracts"],
  ["provider", "Provider console"],
  ["audit", "Ledger explorer"],
  ["account", "Your keys"],
] as const;

export function App() {
  const route = useRoute();
  return (
    <>
      <header className="top">
        <a className="brand" href="/" onClick={(e) => (e.preventDefault(), go({ page: "market" }))}>
          Mercato
        </a>
        <nav aria-label="Main">
          <a
            href="/"
            aria-current={route.page === "market" ? "page" : undefined}
            onClick={(e) => (e.preventDefault(), go({ page: "market" }))}
          >
            Marketplace
          </a>
          {LINKS.map(([page, label]) => (
            <a
              key={page}
              href={href({ page })}
              aria-current={route.page === page ? "page" : undefined}
              onClick={(e) => (e.preventDefault(), go({ page }))}
            >
              {label}
            </a>
          ))}
        </nav>
      </header>
      <main>
        <Suspense fallback={<p aria-live="polite">Loading…</p>}>
        {route.page === "offer" ? (
          <OfferDetail id={route.id} />
        ) : route.page === "account" ? (
          <Account />
        ) : route.page === "contracts" ? (
          <Contracts />
        ) : route.page === "provider" ? (
          <Provider />
        ) : route.page === "audit" ? (
          <Audit />
        ) : (
          <Marketplace />
        )}
        </Suspense>
      </main>
    </>
  );
}
