import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashSync } from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HtpasswdError, loadHtpasswd, parseHtpasswd } from './htpasswd.js';

/** As `htpasswd -B` writes it: bcryptjs writes $2b$, the same algorithm under PHP's/Apache's $2y$ prefix. */
function htpasswdB(password: string, cost = 5): string {
  return `$2y$${hashSync(password, cost).slice(4)}`;
}

describe('parseHtpasswd', () => {
  const alice = htpasswdB('alice-pw');
  const bob = hashSync('bob-pw', 5).replace(/^\$2b\$/, '$2a$');
  const carol = hashSync('carol-pw', 5);

  it('reads $2y$, $2a$ and $2b$ entries and skips blank lines and comments', async () => {
    const text = `# users\n\nalice:${alice}\r\n  bob:${bob}  \n#carol:nope\ncarol:${carol}\n`;
    const users = parseHtpasswd(text, 'test.htpasswd');
    expect(alice.startsWith('$2y$05$')).toBe(true);
    expect(users.has('alice') && users.has('bob') && users.has('carol')).toBe(true);
    expect(users.has('#carol')).toBe(false);
    expect(await users.verify('alice', 'alice-pw')).toBe(true);
    expect(await users.verify('bob', 'bob-pw')).toBe(true);
    expect(await users.verify('carol', 'carol-pw')).toBe(true);
  });

  it('refuses wrong passwords and unknown users', async () => {
    const users = parseHtpasswd(`alice:${alice}\n`, 'x');
    expect(await users.verify('alice', 'wrong')).toBe(false);
    expect(await users.verify('alice', '')).toBe(false);
    expect(await users.verify('mallory', 'alice-pw')).toBe(false);
    expect(await users.verify('', '')).toBe(false);
    expect(users.has('mallory')).toBe(false);
    expect(users.has('__proto__')).toBe(false);
  });

  it('accepts an empty file (no users)', async () => {
    const users = parseHtpasswd('# nobody yet\n', 'empty');
    expect(await users.verify('a', 'b')).toBe(false);
  });

  const bad: [string, string, RegExp][] = [
    ['MD5', 'u:$apr1$abc$0123456789abcdef012345', /MD5 \(\$apr1\$\) hash/],
    ['SHA-1', 'u:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', /SHA-1/],
    ['crypt $6$', 'u:$6$salt$abcdef', /crypt\(3\)/],
    ['crypt $1$', 'u:$1$salt$abcdef', /crypt\(3\)/],
    ['plain text', 'u:secret', /not a bcrypt hash/],
    ['DES crypt', 'u:rl0uF0pLz0Xeg', /not a bcrypt hash/],
    ['empty hash', 'u:', /empty hash/],
    ['no colon', 'justaname', /expected "user:bcrypt-hash"/],
    ['empty user', ':$2y$05$abcdefghijklmnopqrstuvabcdefghijklmnopqrstuvwxyz01234', /expected "user:bcrypt-hash"/],
    ['truncated bcrypt', 'u:$2y$05$abc', /malformed bcrypt hash/],
    ['bcrypt cost out of range', `u:$2y$03$${'a'.repeat(53)}`, /malformed bcrypt hash/],
    ['bcrypt with a bad character', `u:$2y$05$${'a'.repeat(52)}!`, /malformed bcrypt hash/],
    ['$2x$ prefix', `u:$2x$05$${'a'.repeat(53)}`, /not a bcrypt hash/],
  ];
  it.each(bad)('refuses %s naming the file and line', (_label, line, message) => {
    const text = `# header\nok:${alice}\n${line}\n`;
    let caught: unknown;
    try {
      parseHtpasswd(text, '/etc/berth/htpasswd');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(HtpasswdError);
    const err = caught as HtpasswdError;
    expect(err.code).toBe('HTPASSWD_INVALID');
    expect(err.source).toBe('/etc/berth/htpasswd');
    expect(err.line).toBe(3);
    expect(err.message).toMatch(/^\/etc\/berth\/htpasswd:3: /);
    expect(err.message).toMatch(message);
    const hash = line.slice(line.indexOf(':') + 1);
    if (hash.length > 8) expect(err.message).not.toContain(hash);
  });

  it('refuses a user listed twice', () => {
    expect(() => parseHtpasswd(`a:${alice}\na:${carol}\n`, 'f')).toThrow(/f:2: user "a" is listed more than once/);
  });
});

describe('loadHtpasswd', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-htpasswd-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a file', async () => {
    const file = join(dir, 'ok');
    await writeFile(file, `alice:${htpasswdB('pw')}\n`);
    const users = await loadHtpasswd(file);
    expect(await users.verify('alice', 'pw')).toBe(true);
  });

  it('names a file it cannot read', async () => {
    const file = join(dir, 'missing');
    await expect(loadHtpasswd(file)).rejects.toThrow(new HtpasswdError(file, undefined, 'cannot read the htpasswd file (ENOENT)'));
  });

  it('names the file and line of a bad entry', async () => {
    const file = join(dir, 'md5');
    await writeFile(file, `alice:${htpasswdB('pw')}\nbob:$apr1$xyz$abcdefghijklmnopqrstuv\n`);
    await expect(loadHtpasswd(file)).rejects.toThrow(`${file}:2: user "bob": MD5`);
  });
});

describe('verify timing', () => {
  /**
   * An unknown user must cost one bcrypt check of the file's cost, like a known user with a wrong
   * password. Compared by medians of interleaved runs, which shrugs off GC pauses and scheduling
   * noise; a shortcut for unknown users would make the ratio near 0, far outside the band.
   */
  it('takes as long for an unknown user as for a wrong password', async () => {
    const users = parseHtpasswd(`alice:${htpasswdB('right', 8)}\nbob:${htpasswdB('other', 8)}\n`, 'timing');
    const time = async (user: string): Promise<number> => {
      const start = process.hrtime.bigint();
      expect(await users.verify(user, 'wrong')).toBe(false);
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    await time('alice');
    await time('nobody'); // warm up both paths
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 15; i++) {
      known.push(await time('alice'));
      unknown.push(await time(`nobody-${i}`));
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const k = median(known);
    const u = median(unknown);
    expect(Math.abs(k - u) / Math.max(k, u)).toBeLessThan(0.3);
  });
});
