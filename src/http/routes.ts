/**
 * The route table of the registry API: one entry per endpoint with its pattern, its handlers by
 * method, and what access it needs (for the auth layer of issue #4). Names may contain slashes, so
 * patterns are anchored regular expressions over the raw (undecoded) path; a name that does not
 * match the name grammar is refused by the handler with NAME_INVALID, not left unrouted.
 */
import { getBase } from './handlers/base.js';
import { deleteBlob, getBlob } from './handlers/blobs.js';
import { getCatalog, getTags } from './handlers/lists.js';
import { deleteManifest, getManifest, putManifest } from './handlers/manifests.js';
import { getReferrers } from './handlers/referrers.js';
import { cancelUpload, getUploadStatus, patchUpload, putUpload, startUpload } from './handlers/uploads.js';
import type { Handler } from './context.js';

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export const ROUTE_NAMES = {
  base: 'base',
  catalog: 'catalog',
  tags: 'tags',
  manifest: 'manifest',
  uploadStart: 'blob-upload-start',
  upload: 'blob-upload',
  blob: 'blob',
  referrers: 'referrers',
} as const;

export type RouteName = (typeof ROUTE_NAMES)[keyof typeof ROUTE_NAMES];

export interface Route {
  readonly name: RouteName;
  readonly pattern: RegExp;
  readonly methods: Readonly<Partial<Record<Method, Handler>>>;
  /** What the request is about, for access control: nothing, the catalog, or the named repository. */
  readonly scope: 'none' | 'catalog' | 'repository';
}

const NAME = '(?<name>.+?)';

/** In match order: the first route whose pattern matches the path takes the request. */
export const ROUTES: readonly Route[] = [
  { name: ROUTE_NAMES.base, pattern: /^\/v2\/?$/, methods: { GET: getBase, HEAD: getBase }, scope: 'none' },
  { name: ROUTE_NAMES.catalog, pattern: /^\/v2\/_catalog$/, methods: { GET: getCatalog }, scope: 'catalog' },
  { name: ROUTE_NAMES.tags, pattern: new RegExp(`^/v2/${NAME}/tags/list$`), methods: { GET: getTags }, scope: 'repository' },
  {
    name: ROUTE_NAMES.manifest,
    pattern: new RegExp(`^/v2/${NAME}/manifests/(?<reference>[^/]+)$`),
    methods: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest },
    scope: 'repository',
  },
  {
    name: ROUTE_NAMES.uploadStart,
    pattern: new RegExp(`^/v2/${NAME}/blobs/uploads/?$`),
    methods: { POST: startUpload },
    scope: 'repository',
  },
  {
    name: ROUTE_NAMES.upload,
    pattern: new RegExp(`^/v2/${NAME}/blobs/uploads/(?<uuid>[^/]+)$`),
    methods: { GET: getUploadStatus, HEAD: getUploadStatus, PATCH: patchUpload, PUT: putUpload, DELETE: cancelUpload },
    scope: 'repository',
  },
  {
    name: ROUTE_NAMES.blob,
    pattern: new RegExp(`^/v2/${NAME}/blobs/(?<digest>[^/]+)$`),
    methods: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob },
    scope: 'repository',
  },
  {
    name: ROUTE_NAMES.referrers,
    pattern: new RegExp(`^/v2/${NAME}/referrers/(?<digest>[^/]+)$`),
    methods: { GET: getReferrers },
    scope: 'repository',
  },
];

/** The last path matched and what it matched: each request's path is matched twice (its metrics label, then dispatch). */
let last: { readonly path: string; readonly route: Route | undefined; readonly groups: Readonly<Record<string, string>> } | undefined;

/** The route and its named groups (a fresh object per call) for a raw path, or undefined. */
export function matchRoute(path: string): { route: Route; params: Record<string, string> } | undefined {
  if (last?.path !== path) last = firstMatch(path);
  return last.route === undefined ? undefined : { route: last.route, params: { ...last.groups } };
}

function firstMatch(path: string): NonNullable<typeof last> {
  for (const route of ROUTES) {
    const m = route.pattern.exec(path);
    if (m) return { path, route, groups: { ...m.groups } };
  }
  return { path, route: undefined, groups: {} };
}
