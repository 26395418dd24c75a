/**
 * Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic with `?digest=`, or mount with
 * `?mount=[&from=]`), then `PATCH` chunks, `PUT ?digest=` to finish, `GET` status, `DELETE` cancel.
 *
 * Every answer that continues a session carries a Location with a fresh `_state` token. The token's
 * offset (or a chunk's Content-Range) must equal the bytes received so far, else 416 with the current
 * Range: the session stays usable and the client can resume from there.
 */
import { type Grant, allows, mountSourceAccess } from '../../auth/access.js';
import { blobUploadInvalid, isRegistryError, rangeInvalid } from '../../errors.js';
import type { AppendOptions, BlobInfo, Repository, UploadStatus } from '../../storage/registry.js';
import type { Digest } from '../../storage/digest.js';
import { parseDigestParam, parseRepoName, type RepoName, type UploadId } from '../../storage/reference.js';
import { respondEmpty, withRequestBody } from '../body.js';
import type { Ctx, Handler, HandlerDeps } from '../context.js';
import { parseContentRange, uploadRange } from '../headers.js';
import { notify } from '../notify.js';
import { queryValue, repoName, uploadId } from '../params.js';

function uploadLocation(ctx: Ctx, deps: HandlerDeps, name: RepoName, status: UploadStatus): string {
  const state = deps.uploadStates.encode({ name, uuid: status.id, offset: status.size, startedAt: status.startedAt });
  return deps.urlFor(ctx, `/v2/${name}/blobs/uploads/${status.id}?_state=${encodeURIComponent(state)}`);
}

function sendUploadStatus(ctx: Ctx, deps: HandlerDeps, name: RepoName, status: UploadStatus, code: number): void {
  ctx.set('Location', uploadLocation(ctx, deps, name, status));
  ctx.set('Range', uploadRange(status.size));
  ctx.set('Docker-Upload-UUID', status.id);
  respondEmpty(ctx, code);
}

function sendBlobCreated(ctx: Ctx, deps: HandlerDeps, name: RepoName, digest: Digest): void {
  ctx.set('Location', deps.urlFor(ctx, `/v2/${name}/blobs/${digest}`));
  ctx.set('Docker-Content-Digest', digest);
  respondEmpty(ctx, 201);
}

/** The offset the client's `_state` says it is at, after checking the token is ours and for this session. */
function stateOffset(ctx: Ctx, deps: HandlerDeps, name: RepoName, id: UploadId): number | undefined {
  const token = queryValue(ctx, '_state');
  if (token === undefined) return undefined;
  const state = deps.uploadStates.decode(token);
  if (state.name !== name || state.uuid !== id) throw blobUploadInvalid('_state belongs to another upload');
  return state.offset;
}

/** Where the client says this request's bytes start: Content-Range first, else its `_state` offset. */
function expectedOffset(ctx: Ctx, deps: HandlerDeps, name: RepoName, id: UploadId): number | undefined {
  const fromState = stateOffset(ctx, deps, name, id);
  const range = parseContentRange(ctx.get('Content-Range') || undefined);
  if (range === undefined) return fromState;
  const length = ctx.request.length;
  if (length !== undefined && length !== range.end - range.start + 1) {
    throw rangeInvalid(`Content-Range covers ${range.end - range.start + 1} bytes but Content-Length is ${length}`);
  }
  return range.start;
}

/** How a PATCH or PUT writes its body into a session: where it says its bytes start, and how many it declared. */
function appendOptions(ctx: Ctx, deps: HandlerDeps, name: RepoName, id: UploadId): AppendOptions {
  const offset = expectedOffset(ctx, deps, name, id);
  return { signal: ctx.state.signal, length: ctx.request.length, ...(offset !== undefined && { expectedOffset: offset }) };
}

/** Runs a session operation; on 416 the answer still tells the client where the session stands. */
async function withSessionRange<T>(ctx: Ctx, deps: HandlerDeps, name: RepoName, id: UploadId, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (isRegistryError(err, 'RANGE_INVALID')) {
      const status = await deps.registry.repository(name).uploads.status(id, { signal: ctx.state.signal });
      ctx.set('Location', uploadLocation(ctx, deps, name, status));
      ctx.set('Range', uploadRange(status.size));
      ctx.set('Docker-Upload-UUID', id);
    }
    throw err;
  }
}

/**
 * Mounts `d` when the caller may read where it comes from; otherwise answers undefined and the
 * caller gets a plain upload session, which says nothing about whether the blob exists anywhere.
 * With `from`, that repository must link the blob (and, with auth, the caller may pull it). Without
 * `from` (automatic cross-mount, unless `storage.automaticcrossmount` is off): without auth, or for a
 * caller who may do everything (htpasswd), any blob the registry holds; with tokens, a blob linked by
 * a repository the caller may pull: first those the token names with pull, then, where the server knows
 * the caller's rights (`grant.mayPull`: the built-in issuer), any other (see `mountFromPullable`).
 */
async function tryMount(ctx: Ctx, deps: HandlerDeps, repo: Repository, d: Digest, from: string | undefined): Promise<BlobInfo | undefined> {
  const signal = { signal: ctx.state.signal };
  const grant = ctx.state.grant;
  if (from === undefined) {
    if (!deps.automaticCrossMount) return undefined;
    if (grant === undefined || grant.everything === true) return repo.blobs.mountExisting(d, signal);
    const named = pullableRepositories(grant, repo.name);
    for (const source of named) {
      const mounted = await repo.blobs.mountFrom(source, d, signal);
      if (mounted) return mounted;
    }
    if (grant.mayPull === undefined) return undefined;
    return mountFromPullable(deps, repo, d, grant.mayPull, new Set(named), signal);
  }
  const source = parseRepoName(from);
  if (grant !== undefined && !allows(grant, mountSourceAccess(source))) return undefined;
  return repo.blobs.mountFrom(source, d, signal);
}

/** How many repositories' links an automatic cross-mount looks at before it gives up (a plain upload then). */
const MAX_MOUNT_CANDIDATES = 256;
/** How many repository names (in catalog order) it considers at most: one listing per request. */
const MAX_MOUNT_NAMES = 5_000;

/**
 * Automatic cross-mount for a caller whose rights the server knows: reads the first MAX_MOUNT_NAMES
 * repository names (one listing: a range read of the listing index when it vouches, else one walk of
 * the tree, as `_catalog` costs) and for each repository other than the target (and `tried`) that
 * `mayPull` allows, looks for a link to `d` (one stat each), at most MAX_MOUNT_CANDIDATES of them; the
 * client then simply uploads the blob. So a request costs at most one listing and 256 stats.
 */
async function mountFromPullable(
  deps: HandlerDeps,
  repo: Repository,
  d: Digest,
  mayPull: (repository: string) => boolean,
  tried: ReadonlySet<RepoName>,
  signal: { signal: AbortSignal },
): Promise<BlobInfo | undefined> {
  let looked = 0;
  for (const name of await deps.registry.repositories({ ...signal, limit: MAX_MOUNT_NAMES })) {
    const source = parseRepoNameOrUndefined(name);
    if (source === undefined || source === repo.name || tried.has(source) || !mayPull(source)) continue;
    if (looked++ >= MAX_MOUNT_CANDIDATES) return undefined;
    const mounted = await repo.blobs.mountFrom(source, d, signal);
    if (mounted) return mounted;
  }
  return undefined;
}

/** The repositories other than `target` that `grant` lets its holder pull (names that do not parse are skipped). */
function pullableRepositories(grant: Grant, target: RepoName): RepoName[] {
  const names = new Set<RepoName>();
  for (const item of grant.access) {
    if (item.type !== 'repository' || item.name === target || !allows(grant, mountSourceAccess(item.name))) continue;
    const name = parseRepoNameOrUndefined(item.name);
    if (name !== undefined) names.add(name);
  }
  return [...names];
}

function parseRepoNameOrUndefined(s: string): RepoName | undefined {
  try {
    return parseRepoName(s);
  } catch {
    return undefined;
  }
}

/** `POST /v2/<name>/blobs/uploads/[?digest=|?mount=[&from=]]`. */
export const startUpload: Handler = async (ctx, deps) => {
  const name = repoName(ctx);
  const repo = deps.registry.repository(name);
  const signal = { signal: ctx.state.signal };
  const mount = queryValue(ctx, 'mount');
  if (mount !== undefined) {
    const d = parseDigestParam(mount);
    const from = queryValue(ctx, 'from');
    const mounted = await tryMount(ctx, deps, repo, d, from);
    if (mounted) {
      await notify(ctx, deps, { kind: 'blob', action: 'mount', repository: name, digest: d, size: mounted.size, ...(from !== undefined && { fromRepository: from }) });
      return sendBlobCreated(ctx, deps, name, d);
    }
  }
  const digest = queryValue(ctx, 'digest');
  const monolithic = digest === undefined ? undefined : parseDigestParam(digest);
  // A monolithic POST declares its blob: the quotas can refuse it before its bytes are read.
  const length = ctx.request.length;
  const declared = monolithic !== undefined && length !== undefined ? { digest: monolithic, size: length } : undefined;
  const session = await repo.uploads.start({ ...signal, declared });
  if (monolithic === undefined) return sendUploadStatus(ctx, deps, name, session, 202);
  let blob: BlobInfo;
  try {
    blob = await withRequestBody(ctx, (body, pacer) => repo.uploads.commit(session.id, monolithic, body, { ...signal, length, pacer }));
  } catch (err) {
    await repo.uploads.cancel(session.id).catch(() => undefined); // the client never saw this session
    throw err;
  }
  await notify(ctx, deps, { kind: 'blob', action: 'push', repository: name, digest: monolithic, size: blob.size });
  sendBlobCreated(ctx, deps, name, monolithic);
};

/** `GET /v2/<name>/blobs/uploads/<uuid>`: 204 with the Range received so far. */
export const getUploadStatus: Handler = async (ctx, deps) => {
  const name = repoName(ctx);
  const id = uploadId(ctx);
  stateOffset(ctx, deps, name, id);
  const status = await deps.registry.repository(name).uploads.status(id, { signal: ctx.state.signal });
  sendUploadStatus(ctx, deps, name, status, 204);
};

/** `PATCH /v2/<name>/blobs/uploads/<uuid>`: one chunk, with or without Content-Range. */
export const patchUpload: Handler = async (ctx, deps) => {
  const name = repoName(ctx);
  const id = uploadId(ctx);
  const options = appendOptions(ctx, deps, name, id);
  const uploads = deps.registry.repository(name).uploads;
  const status = await withSessionRange(ctx, deps, name, id, () => withRequestBody(ctx, (body, pacer) => uploads.append(id, body, { ...options, pacer })));
  sendUploadStatus(ctx, deps, name, status, 202);
};

/** `PUT /v2/<name>/blobs/uploads/<uuid>?digest=`: the last chunk, if any, then commit. */
export const putUpload: Handler = async (ctx, deps) => {
  const name = repoName(ctx);
  const id = uploadId(ctx);
  const digest = parseDigestParam(queryValue(ctx, 'digest') ?? '');
  const options = appendOptions(ctx, deps, name, id);
  const uploads = deps.registry.repository(name).uploads;
  const blob = await withSessionRange(ctx, deps, name, id, () => withRequestBody(ctx, (body, pacer) => uploads.commit(id, digest, body, { ...options, pacer })));
  await notify(ctx, deps, { kind: 'blob', action: 'push', repository: name, digest, size: blob.size });
  sendBlobCreated(ctx, deps, name, digest);
};

/** `DELETE /v2/<name>/blobs/uploads/<uuid>`: cancel. */
export const cancelUpload: Handler = async (ctx, deps) => {
  const name = repoName(ctx);
  const id = uploadId(ctx);
  stateOffset(ctx, deps, name, id);
  await deps.registry.repository(name).uploads.cancel(id, { signal: ctx.state.signal });
  respondEmpty(ctx, 204);
};

