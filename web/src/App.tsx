import { Account } from "./pages/Account";
import { Marketplace } from "./pages/Marketplace";
import { OfferDetail } from "./pages/OfferDetail";
import { Contracts } from "./pages/Contracts";
import { Provider } from "./pages/Provider";
import { Audit } from "./pages/Audit";
import { go, href, useRoute } from "./router";

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
      </main>
    </>
  );
}
