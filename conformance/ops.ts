/**
 * Registry operations the workflows share: paths, the Location dance of uploads, pushing blobs and
 * manifests for set-up (in the ways every pushing registry MUST support: POST then PUT, manifest PUT),
 * and the record of what a run pushed so the clean-up can delete it again.
 */
import type { CheckHandle, CheckRunner, Settings } from './check.js';
import type { Client, Response } from './client.js';
import type { Blob, Image, Manifest } from './content.js';
import { MEDIA } from './content.js';
import { expectHeader, fail, summarize } from './expect.js';

/** Everything a workflow needs: the client, the settings and the record of what was pushed. */
export interface SuiteContext {
  readonly client: Client;
  readonly settings: Settings;
  readonly pushed: PushedLog;
}

/** What a run pushed, in push order, so the clean-up deletes it (manifests first, newest first). */
export class PushedLog {
  readonly manifests: { readonly repo: string; readonly digest: string }[] = [];
  readonly blobs: { readonly repo: string; readonly digest: string }[] = [];

  /** Records a manifest pushed to `repo`. */
  manifest(repo: string, digest: string): void {
    if (!this.manifests.some((m) => m.repo === repo && m.digest === digest)) this.manifests.push({ repo, digest });
  }

  /** Records a blob pushed (or mounted) into `repo`. */
  blob(repo: string, digest: string): void {
    if (!this.blobs.some((b) => b.repo === repo && b.digest === digest)) this.blobs.push({ repo, digest });
  }
}

/** Every manifest type a client of this suite accepts, for `Accept` (the spec: clients SHOULD send one). */
export const ACCEPT_MANIFESTS = [
  MEDIA.ociManifest,
  MEDIA.ociIndex,
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export const manifestPath = (repo: string, ref: string): string => `/v2/${repo}/manifests/${ref}`;
export const blobPath = (repo: string, digest: string): string => `/v2/${repo}/blobs/${digest}`;
export const uploadsPath = (repo: string): string => `/v2/${repo}/blobs/uploads/`;
export const tagsPath = (repo: string): string => `/v2/${repo}/tags/list`;
export const referrersPath = (repo: string, digest: string): string => `/v2/${repo}/referrers/${digest}`;

/** `url` with `key=value` appended to its query, leaving what is already there byte for byte. */
export function withQuery(url: string, key: string, value: string): string {
  const hash = url.indexOf('#');
  const bare = hash === -1 ? url : url.slice(0, hash);
  return `${bare}${bare.includes('?') ? '&' : '?'}${key}=${value}`;
}

/** The absolute URL of the answer's Location (absolute or relative), which must be present. */
export function locationOf(ctx: SuiteContext, res: Response): string {
  return ctx.client.resolve(expectHeader(res, 'Location'), res.url);
}

/** Starts an upload session; answers its (absolute) Location. */
export async function startUpload(ctx: SuiteContext, repo: string): Promise<string> {
  const res = await ctx.client.request('POST', uploadsPath(repo), { headers: { 'Content-Length': '0' } });
  if (res.status !== 202) fail(`POST ${uploadsPath(repo)} 202`, summarize(res));
  return locationOf(ctx, res);
}

/** `value`, which an earlier check that this one needs has set. */
export function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} is unknown (a needed step did not set it)`);
  return value;
}

/** Cancels an upload session, ignoring the answer (clean-up of sessions a check opened). */
export async function cancelQuietly(ctx: SuiteContext, location: string | undefined): Promise<void> {
  if (location === undefined) return;
  await ctx.client.request('DELETE', location).catch(() => undefined);
}

/** Pushes a blob by POST then PUT (the one way every pushing registry MUST accept) and records it. */
export async function uploadBlob(ctx: SuiteContext, repo: string, blob: Blob): Promise<void> {
  const location = await startUpload(ctx, repo);
  const res = await ctx.client.request('PUT', withQuery(location, 'digest', blob.digest), {
    headers: { 'Content-Type': 'application/octet-stream' },
    body: blob.bytes,
  });
  if (res.status !== 201) fail(`PUT of blob ${blob.digest} 201`, summarize(res));
  ctx.pushed.blob(repo, blob.digest);
}

/** PUTs a manifest as its media type; answers the raw answer (records it when 201). */
export async function putManifest(ctx: SuiteContext, repo: string, ref: string, m: Manifest): Promise<Response> {
  const res = await ctx.client.request('PUT', manifestPath(repo, ref), { headers: { 'Content-Type': m.mediaType }, body: m.bytes });
  if (res.status === 201) ctx.pushed.manifest(repo, m.digest);
  return res;
}

/** PUTs a manifest and requires 201. */
export async function pushManifest(ctx: SuiteContext, repo: string, ref: string, m: Manifest): Promise<void> {
  const res = await putManifest(ctx, repo, ref, m);
  if (res.status !== 201) fail(`PUT ${manifestPath(repo, ref)} 201`, summarize(res));
}

/** Pushes an image's blobs, then its manifest under `ref` (a tag, or its digest). */
export async function pushImage(ctx: SuiteContext, repo: string, ref: string, image: Image): Promise<void> {
  for (const b of image.blobs) await uploadBlob(ctx, repo, b);
  await pushManifest(ctx, repo, ref, image.manifest);
}

/** GETs a manifest with the Accept header a client sends. */
export function getManifest(ctx: SuiteContext, method: 'GET' | 'HEAD', repo: string, ref: string): Promise<Response> {
  return ctx.client.request(method, manifestPath(repo, ref), { headers: { Accept: ACCEPT_MANIFESTS } });
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * GETs or HEADs `target` (a path or an absolute URL), following redirects: a registry MAY serve blobs
 * from elsewhere, e.g. a presigned storage URL. Credentials are never sent to another origin.
 */
export async function getFollowing(
  ctx: SuiteContext,
  method: 'GET' | 'HEAD',
  target: string,
  headers: Readonly<Record<string, string>> = {},
): Promise<Response> {
  let res = await ctx.client.request(method, target, { headers });
  for (let hops = 0; hops < 5 && REDIRECTS.has(res.status) && res.header('Location') !== undefined; hops++) {
    res = await ctx.client.request(method, locationOf(ctx, res), { headers });
  }
  return res;
}

/** GETs or HEADs a blob, following redirects. */
export function getBlob(
  ctx: SuiteContext,
  method: 'GET' | 'HEAD',
  repo: string,
  digest: string,
  headers: Readonly<Record<string, string>> = {},
): Promise<Response> {
  return getFollowing(ctx, method, blobPath(repo, digest), headers);
}

/** The URL of a `Link: <url>; rel="next"` header, resolved against the answer's URL. */
export function nextLink(ctx: SuiteContext, res: Response): string | undefined {
  const header = res.header('Link');
  if (header === undefined) return undefined;
  const m = /<([^>]*)>\s*;\s*rel="?next"?/i.exec(header);
  if (m === null || m[1] === undefined) return fail('Link: <url>; rel="next"', `Link: ${header}`);
  return ctx.client.resolve(m[1], res.url);
}

async function deleteEach(ctx: SuiteContext, items: readonly { repo: string; path: string }[]): Promise<void> {
  const refused: string[] = [];
  for (const { path } of items) {
    const res = await ctx.client.request('DELETE', path);
    if (res.status !== 202 && res.status !== 404) refused.push(`${path} ${summarize(res)}`);
  }
  if (refused.length > 0) fail('202 (or 404 when already deleted) for each', refused.join('; '));
}

/** Deletes what the run pushed, manifests (newest first) then blobs, as two checks of `runner`. */
export async function cleanup(ctx: SuiteContext, runner: CheckRunner): Promise<CheckHandle[]> {
  const manifests = [...ctx.pushed.manifests].reverse().map((m) => ({ repo: m.repo, path: manifestPath(m.repo, m.digest) }));
  const blobs = [...ctx.pushed.blobs].reverse().map((b) => ({ repo: b.repo, path: blobPath(b.repo, b.digest) }));
  const none = (items: readonly unknown[], what: string): string | undefined => (items.length === 0 ? `the run pushed no ${what}` : undefined);
  return [
    await runner.check('DELETE every manifest the run pushed', () => deleteEach(ctx, manifests), { skip: none(manifests, 'manifests') }),
    await runner.check('DELETE every blob the run pushed', () => deleteEach(ctx, blobs), { skip: none(blobs, 'blobs') }),
  ];
}
