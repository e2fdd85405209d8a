// The few routes of the application, on the History API (the broker answers any path outside
// /assets/ with index.html, so a reload or a shared link lands on the same page).
import { useEffect, useState } from "react";

export type Route = { page: "market" } | { page: "account" } | { page: "offer"; id: string };

export function parse(pathname: string): Route {
  if (pathname === "/account") return { page: "account" };
  const m = /^\/offers\/([^/]+)$/.exec(pathname);
  return m?.[1] ? { page: "offer", id: decodeURIComponent(m[1]) } : { page: "market" };
}

export function href(route: Route): string {
  if (route.page === "account") return "/account";
  return route.page === "offer" ? `/offers/${encodeURIComponent(route.id)}` : "/";
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
