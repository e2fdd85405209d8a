import { Marketplace } from "./pages/Marketplace";

export function App() {
  return (
    <>
      <header className="top">
        <a className="brand" href="/">
          Mercato
        </a>
        <nav aria-label="Main">
          <a href="/" aria-current="page">
            Marketplace
          </a>
        </nav>
      </header>
      <main>
        <Marketplace />
      </main>
    </>
  );
}
