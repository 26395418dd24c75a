/**
 * Route parameters and query values, checked once at the boundary into branded types.
 */
import { paginationInvalid } from '../errors.js';
import type { Digest } from '../storage/digest.js';
import {
  type Reference, type RepoName, type UploadId, parseDigestParam, parseReference, parseRepoName, parseUploadId,
} from '../storage/reference.js';
import type { Ctx } from './context.js';

function param(ctx: Ctx, key: string): string {
  const value = ctx.state.params[key];
  if (value === undefined) throw new Error(`route has no parameter ${key}`);
  return value;
}

/** The repository name from the URL path, raw: a percent-encoded name is refused, never decoded. */
export const repoName = (ctx: Ctx): RepoName => parseRepoName(param(ctx, 'name'));
export const reference = (ctx: Ctx): Reference => parseReference(param(ctx, 'reference'));
export const digestParam = (ctx: Ctx): Digest => parseDigestParam(param(ctx, 'digest'));
export const uploadId = (ctx: Ctx): UploadId => parseUploadId(param(ctx, 'uuid'));

/** A single query value (the first, when repeated), or undefined. */
export function queryValue(ctx: Ctx, key: string): string | undefined {
  const v = ctx.query[key];
  return Array.isArray(v) ? v[0] : v;
}

/** The `n` and `last` of a list request. @throws PAGINATION_NUMBER_INVALID */
export function pagination(ctx: Ctx, max: number): { n: number | undefined; last: string | undefined } {
  const raw = queryValue(ctx, 'n');
  const last = queryValue(ctx, 'last');
  if (raw === undefined || raw === '') return { n: undefined, last };
  if (!/^\d+$/.test(raw)) throw paginationInvalid(`n=${JSON.stringify(raw)} is not a non-negative integer`);
  return { n: Math.min(Number(raw), max), last };
}
