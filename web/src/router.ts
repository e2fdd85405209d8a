// The few routes of the application, on the History API (the broker answers any path outside
// /assets/ with index.html, so a reload or a shared link lands on the same page).
import { useEffect, useState } from "react";

export type Route =
  | { page: "market" }
  | { page: "account" }
  | { page: "contracts" }
  | { page: "provider" }
  | { page: "audit" }
  | { page: "offer"; id: string };

const PLAIN = ["account", "contracts", "provider", "audit"] as const;

export function parse(pathname: string): Route {
  for (const page of PLAIN) if (pathname === `/${page}`) return { page };
  const m = /^\/offers\/([^/]+)$/.exec(pathname);
  return m?.[1] ? { page: "offer", id: decodeURIComponent(m[1]) } : { page: "market" };
}

export function href(route: Route): string {
  if (route.page === "offer") return `/offers/${encodeURIComponent(route.id)}`;
  return route.page === "market" ? "/" : `/${route.page}`;
}

export function go(route: Route) {
  window.history.pushState(null, "", href(route));
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(window.location.pathname));
  useEffect(() => {
    const update = () => setRoute(parse(window.location.pathname));
    window.addEventListener("popstate", update);
    return () => window.removeEventListener("popstate", update);
  }, []);
  return route;
}
