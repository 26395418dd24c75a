/**
 * The answer for a path that is no endpoint: 404 with the spec's code that fits what the path looks
 * like, never a code of Berth's own. Under `/v2/`, the first endpoint word after the name decides:
 * `…/blobs/uploads/<x>` BLOB_UPLOAD_UNKNOWN, `…/blobs/<x>` DIGEST_INVALID (BLOB_UNKNOWN with none),
 * `…/manifests/<x>` MANIFEST_UNKNOWN (DIGEST_INVALID when `<x>` holds a ':'), `…/referrers/<x>` DIGEST_INVALID, `…/tags/<x>` NAME_UNKNOWN; with no
 * endpoint word, NAME_INVALID for a name the grammar refuses and NAME_UNKNOWN otherwise. Outside `/v2/`
 * there is no API: UNSUPPORTED.
 */
import { NoRouteError, type OciCode, isRegistryError } from '../errors.js';
import { parseRepoName } from '../storage/reference.js';

const ENDPOINT = /^(?<name>.*?)\/(?<endpoint>blobs\/uploads|blobs|manifests|referrers|tags)(?:\/(?<tail>.*))?$/;

/** The 404 for `path` (raw, as routed), which matched no route. */
export function unroutedError(path: string): NoRouteError {
  if (!path.startsWith('/v2/')) return new NoRouteError('UNSUPPORTED', 'page not found: the registry API is served under /v2/', { path });
  const rest = path.slice('/v2/'.length);
  const m = ENDPOINT.exec(rest);
  const name = m?.groups?.['name'] ?? rest.replace(/\/+$/, '');
  if (!validName(name)) return new NoRouteError('NAME_INVALID', 'no endpoint at this path: invalid repository name', { path });
  const endpoint = m?.groups?.['endpoint'];
  const tail = m?.groups?.['tail'];
  const code: OciCode = codeFor(endpoint, tail ?? '');
  return new NoRouteError(code, `no endpoint at this path (${code})`, { path });
}

function codeFor(endpoint: string | undefined, tail: string): OciCode {
  switch (endpoint) {
    case 'blobs/uploads':
      return 'BLOB_UPLOAD_UNKNOWN';
    case 'blobs':
      return tail !== '' ? 'DIGEST_INVALID' : 'BLOB_UNKNOWN';
    case 'manifests':
      // A reference with a ':' was meant as a digest; a tag can hold no '/' and no ':'.
      return tail.includes(':') ? 'DIGEST_INVALID' : 'MANIFEST_UNKNOWN';
    case 'referrers':
      return 'DIGEST_INVALID';
    default:
      return 'NAME_UNKNOWN';
  }
}

function validName(name: string): boolean {
  try {
    parseRepoName(name);
    return true;
  } catch (err) {
    if (isRegistryError(err, 'NAME_INVALID')) return false;
    throw err;
  }
}
