/**
 * Types shared by the HTTP layer: the per-request state Koa carries, and what every handler is given.
 */
import type { ParameterizedContext } from 'koa';
import type { Grant } from '../auth/access.js';
import type { EventSink } from '../notifications/event.js';
import type { Registry } from '../storage/registry.js';
import type { UploadStateCodec } from './upload-state.js';

export interface RequestState {
  /** Aborted when the client goes away before the response is done. */
  signal: AbortSignal;
  requestId: string;
  /** Named groups of the matched route pattern, raw (not URL-decoded). */
  params: Record<string, string>;
  /** What the caller may do, once authorized; undefined when the registry has no auth (everything). */
  grant: Grant | undefined;
  /** Which endpoint took the request (a route name, or `token`, `probe`, `root`, `unknown`): a metrics label. */
  route: string;
}

export type Ctx = ParameterizedContext<RequestState>;

export interface HandlerDeps {
  readonly registry: Registry;
  readonly uploadStates: UploadStateCodec;
  /** An absolute or relative URL for a path of this registry, as `http.relativeurls` and `http.host` say. */
  readonly urlFor: (ctx: Ctx, path: string) => string;
  /** `http.prefix`: the path the API is served under ('' for the root); Link headers carry it. */
  readonly prefix: string;
  /** A mount without `from` may link a blob the caller can pull from some repository (`storage.automaticcrossmount`). */
  readonly automaticCrossMount: boolean;
  /** Largest `n` a list request may ask for; larger asks are cut to this and paginated. */
  readonly maxListEntries: number;
  /** Where handlers report pushes, pulls, mounts and deletes (`notifications`); none when not configured. */
  readonly events?: EventSink;
}

export type Handler = (ctx: Ctx, deps: HandlerDeps) => Promise<void>;

/**
 * Which repository a request's name means, decided once per request before access control (the
 * mirror's routing, src/mirror/routing.ts): `ns` is containerd's `?ns=` value, `write` is true for
 * POST, PUT, PATCH and DELETE. Answers the name to serve.
 */
export interface NameRouting {
  route(name: string, hints: { readonly ns: string | undefined; readonly write: boolean }): Promise<string>;
}
