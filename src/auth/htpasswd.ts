/**
 * htpasswd files, as registry:2's `auth.htpasswd` reads them, limited to bcrypt: one `user:hash` per
 * line, where the hash is `$2y$`, `$2a$` or `$2b$` (what `htpasswd -B` writes). Blank lines and
 * lines starting with `#` are skipped. Every other hash format (MD5 `$apr1$`, `{SHA}`, crypt, plain
 * text) is refused when the file is loaded, with the file and line named, instead of failing every
 * login later: those formats are too weak to accept, and a file that half works is worse than one
 * that is refused.
 *
 * Verification takes the same time whether or not the user exists: an unknown user's password is
 * checked against a fixed dummy hash of the cost most of the file's entries use, so the answer time
 * does not tell an attacker which names are real.
 */
import { readFile } from 'node:fs/promises';
import { compare } from 'bcryptjs';

/** The users of an htpasswd file. */
export interface Htpasswd {
  /**
   * Whether `password` is the password of `user`. Never throws for any input; an unknown user takes
   * as long as a known one with a wrong password.
   */
  verify(user: string, password: string): Promise<boolean>;
  /** Whether `user` has an entry. */
  has(user: string): boolean;
}

/** An htpasswd file that cannot be used: unreadable, malformed, or with a hash that is not bcrypt. */
export class HtpasswdError extends Error {
  readonly code = 'HTPASSWD_INVALID';
  constructor(
    /** The file (or other source) the text came from. */
    readonly source: string,
    /** The 1-based line at fault, or undefined when the whole file is. */
    readonly line: number | undefined,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`${source}${line === undefined ? '' : `:${line}`}: ${reason}`, options);
    this.name = 'HtpasswdError';
  }
}

const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

/** A bcrypt hash of 32 random bytes nobody knows; its cost digits are replaced to match the file's. */
const DUMMY_HASH_TAIL = '9G6iaYFFbdvwVuUZ2EBBxeBlh2PtZO7Cx/doCDWIoKSKlhaAUiF8i';
const DEFAULT_COST = 10;

/**
 * Reads and parses an htpasswd file.
 * @throws HtpasswdError when the file cannot be read or any line is not a valid bcrypt entry.
 */
export async function loadHtpasswd(path: string): Promise<Htpasswd> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'read error';
    throw new HtpasswdError(path, undefined, `cannot read the htpasswd file (${code})`, { cause: err });
  }
  return parseHtpasswd(text, path);
}

/**
 * Parses htpasswd text; `source` names it in errors. Usernames are taken up to the first `:` and
 * compared exactly; a name listed twice is refused, since which password applies would be a guess.
 * @throws HtpasswdError naming `source` and the line for a malformed line, a non-bcrypt hash or a
 * repeated user. The message never contains the hash.
 */
export function parseHtpasswd(text: string, source: string): Htpasswd {
  const users = new Map<string, string>();
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const lineNo = index + 1;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HtpasswdError(source, lineNo, 'expected "user:bcrypt-hash"');
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    const problem = hashProblem(hash);
    if (problem !== undefined) throw new HtpasswdError(source, lineNo, `user ${JSON.stringify(user)}: ${problem}`);
    if (users.has(user)) throw new HtpasswdError(source, lineNo, `user ${JSON.stringify(user)} is listed more than once`);
    users.set(user, hash);
  }
  const dummy = `$2b$${String(typicalCost(users.values())).padStart(2, '0')}$${DUMMY_HASH_TAIL}`;
  return {
    has: (user) => users.has(user),
    verify: async (user, password) => {
      const hash = users.get(user);
      try {
        const ok = await compare(password, hash ?? dummy);
        return ok && hash !== undefined;
      } catch {
        return false;
      }
    },
  };
}

/** Why `hash` is not accepted, or undefined when it is a well-formed bcrypt hash. */
function hashProblem(hash: string): string | undefined {
  if (BCRYPT_HASH.test(hash)) return undefined;
  const only = 'only bcrypt hashes ($2y$, $2a$, $2b$; htpasswd -B) are supported';
  if (hash.startsWith('$apr1$')) return `MD5 ($apr1$) hash: ${only}`;
  if (hash.startsWith('{SHA}')) return `SHA-1 ({SHA}) hash: ${only}`;
  if (/^\$[156]\$/.test(hash)) return `crypt(3) hash: ${only}`;
  if (/^\$2[aby]\$/.test(hash)) return 'malformed bcrypt hash (expected $2y$NN$ and 53 characters, cost 04 to 31)';
  if (hash === '') return `empty hash: ${only}`;
  return `not a bcrypt hash (plain text or DES crypt?): ${only}`;
}

/** The cost most entries use (the higher one on a tie), so a dummy check costs what a real one does. */
function typicalCost(hashes: Iterable<string>): number {
  const counts = new Map<number, number>();
  for (const hash of hashes) {
    const cost = Number(hash.slice(4, 6));
    counts.set(cost, (counts.get(cost) ?? 0) + 1);
  }
  let best = DEFAULT_COST;
  let bestCount = 0;
  for (const [cost, count] of counts) {
    if (count > bestCount || (count === bestCount && cost > best)) {
      best = cost;
      bestCount = count;
    }
  }
  return best;
}
