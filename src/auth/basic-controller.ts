/**
 * HTTP Basic auth against an htpasswd file, as registry:2's `auth.htpasswd`: any user whose bcrypt
 * password matches may do everything; anyone else gets 401 with `Basic realm="…"`. Whether the user
 * exists is never revealed, in the answer or in its timing (htpasswd.ts compares against a dummy hash).
 */
import { UnauthorizedError } from '../errors.js';
import type { Grant } from './access.js';
import type { AccessController } from './controller.js';
import type { Htpasswd } from './htpasswd.js';
import { quote } from './token-controller.js';

/** The user and password of a `Basic` Authorization header, or undefined when it is not one. */
export function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  const m = header === undefined ? null : /^Basic\s+([A-Za-z0-9+/]+=*)\s*$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1] ?? '', 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export function createBasicController(o: { realm: string; htpasswd: Htpasswd }): AccessController {
  const challenge = `Basic realm=${quote(o.realm)}`;
  return {
    async authorize(req, needed): Promise<Grant> {
      const credentials = parseBasic(req.authorization);
      if (credentials === undefined) throw new UnauthorizedError(challenge);
      if (!(await o.htpasswd.verify(credentials.user, credentials.password))) {
        throw new UnauthorizedError(challenge, 'invalid username or password');
      }
      return { subject: credentials.user, access: needed, everything: true };
    },
  };
}
