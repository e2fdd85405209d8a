// The broker's API, typed by `schema.ts` (generated from the broker's OpenAPI document by
// `npm run gen:api`; never edited by hand).
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type SearchPage = Schemas["SearchPage"];
export type SearchItem = Schemas["SearchItem"];
export type Facets = Schemas["Facets"];
export type SearchQuery = NonNullable<paths["/v1/offers"]["get"]["parameters"]["query"]>;
export type OfferDocument = Schemas["OfferDocument"];
export type Reputation = Schemas["Reputation"];

/** An answer the broker refused, with its problem's reason. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function queryString(q: Record<string, unknown>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(q)) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) params.append(key, String(v));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** One call to the broker: the answer, or an `ApiError` with the problem's reason. */
export async function request<T>(
  method: string,
  path: string,
  options: { body?: unknown; token?: string; signal?: AbortSignal; headers?: Record<string, string>; raw?: boolean } = {},
): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: {
        accept: "application/json",
        ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        ...options.headers,
      },
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
      signal: options.signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, "the broker does not answer; check that it runs, then try again");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const problem = (await response.json()) as Schemas["Problem"];
      detail = problem.detail ?? problem.title ?? detail;
    } catch {
      // Not a problem document: the status says enough.
    }
    throw new ApiError(response.status, detail);
  }
  return (options.raw ? await response.text() : await response.json()) as T;
}

const get = <T>(path: string, signal?: AbortSignal) => request<T>("GET", path, { signal });

export const api = {
  search: (q: SearchQuery, signal?: AbortSignal) => get<SearchPage>(`/v1/offers${queryString(q)}`, signal),
  facets: (q: SearchQuery, signal?: AbortSignal) => get<Facets>(`/v1/offers/facets${queryString(q)}`, signal),
  offer: (id: string, signal?: AbortSignal) => get<OfferDocument>(`/v1/offers/${encodeURIComponent(id)}`, signal),
  reputation: (did: string, signal?: AbortSignal) =>
    get<Reputation>(`/v1/providers/${encodeURIComponent(did)}/reputation`, signal),
};
