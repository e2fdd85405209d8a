import { Account } from "./pages/Account";
import { Marketplace } from "./pages/Marketplace";
import { OfferDetail } from "./pages/OfferDetail";
import { go, useRoute } from "./router";

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
          </a>{" "}
          <a
            href="/account"
            aria-current={route.page === "account" ? "page" : undefined}
            onClick={(e) => (e.preventDefault(), go({ page: "account" }))}
          >
            Your keys
          </a>
        </nav>
      </header>
      <main>
        {route.page === "offer" ? (
          <OfferDetail id={route.id} />
        ) : route.page === "account" ? (
          <Account />
        ) : (
          <Marketplace />
        )}
      </main>
    </>
  );
}
