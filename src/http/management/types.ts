/**
 * The shapes of the management API (`/berth/v1/`): an endpoint declares the access it needs (computed
 * from the request, so a listing can ask for less than the whole registry), whether it writes (refused
 * in read-only mode), and its handler. Routes are tried in table order; a route whose pattern matches
 * but that lacks the method gives way to a later route that has it (`DELETE /berth/v1/repositories/a/usage`
 * deletes repository `a/usage`), and only when none has it is the answer 405.
 */
import type { AccessItem } from '../../auth/access.js';
import type { Ctx, HandlerDeps } from '../context.js';
import type { Method } from '../routes.js';
import type { RegistryManagement } from '../../storage/registry.js';

/** What management handlers are given: the registry API's deps, and storage's management face. */
export interface ManagementDeps extends HandlerDeps {
  /** Repository delete and usage; none when the app was built without it (the endpoints then answer 503). */
  readonly management: RegistryManagement | undefined;
}

/** One method of one management endpoint. */
export interface ManagementEndpoint {
  /** What the caller must hold (token scopes), from the request's path parameters and query. */
  readonly access: (ctx: Ctx) => readonly AccessItem[];
  /** True when it changes the registry: refused with UNSUPPORTED in read-only mode. */
  readonly writes: boolean;
  readonly handle: (ctx: Ctx, deps: ManagementDeps) => Promise<void>;
}

export interface ManagementRoute {
  /** The metrics label (`berth-<name>`). */
  readonly name: string;
  /** Anchored, over the raw path (names keep their slashes). */
  readonly pattern: RegExp;
  readonly methods: Readonly<Partial<Record<Method, ManagementEndpoint>>>;
}
