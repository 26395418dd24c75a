/**
 * Repository names, tags and upload ids: branded strings, checked once where a request enters and
 * trusted by everything below. A value that passes can never reach outside the storage root: names
 * are lower-case components without dots of their own, tags cannot start with a dot, and upload ids
 * are UUIDs.
 */
import { blobUploadUnknown, digestInvalid, nameInvalid, tagInvalid } from '../errors.js';
import { type Digest, digestProblem, parseDigest } from './digest.js';

/** A repository name that passed parseRepoName. */
export type RepoName = string & { readonly __brand: 'RepoName' };
/** A tag that passed parseTag. */
export type Tag = string & { readonly __brand: 'Tag' };
/** An upload session id that passed parseUploadId. */
export type UploadId = string & { readonly __brand: 'UploadId' };

/** A manifest is addressed by tag or by digest. */
export type Reference = { readonly tag: Tag } | { readonly digest: Digest };

/** The longest repository name accepted, as registry:2. */
export const MAX_NAME_LENGTH = 255;

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_PATTERN = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const UPLOAD_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** @throws RegistryError NAME_INVALID */
export function parseRepoName(s: string): RepoName {
  if (s.length === 0) throw nameInvalid('empty name');
  if (s.length > MAX_NAME_LENGTH) throw nameInvalid(`longer than ${MAX_NAME_LENGTH} characters`);
  if (!NAME_PATTERN.test(s)) throw nameInvalid(`${JSON.stringify(s)} does not match ${NAME_PATTERN.source}`);
  return s as RepoName;
}

/** @throws RegistryError TAG_INVALID */
export function parseTag(s: string): Tag {
  if (!TAG_PATTERN.test(s)) throw tagInvalid(s);
  return s as Tag;
}

/**
 * The throwing face of digest.ts's parseDigest, for requests: the same check, failing with the reason.
 * @throws RegistryError DIGEST_INVALID
 */
export function parseDigestParam(s: string): Digest {
  const d = parseDigest(s);
  if (d === undefined) throw digestInvalid(digestProblem(s) ?? 'malformed digest', { digest: s });
  return d;
}

/** A tag, or a digest when the string contains `:` (tags cannot). @throws TAG_INVALID, DIGEST_INVALID */
export function parseReference(s: string): Reference {
  return s.includes(':') ? { digest: parseDigestParam(s) } : { tag: parseTag(s) };
}

/** @throws RegistryError BLOB_UPLOAD_UNKNOWN for anything that is not an id Berth could have issued. */
export function parseUploadId(s: string): UploadId {
  if (!UPLOAD_ID_PATTERN.test(s)) throw blobUploadUnknown(s);
  return s as UploadId;
}

/** The reference as it appears in a URL. */
export function referenceString(ref: Reference): string {
  return 'tag' in ref ? ref.tag : ref.digest;
}
