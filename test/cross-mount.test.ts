/**
 * Automatic cross-mount (a mount without `from`) against a real Berth: on by default, off with
 * `storage.automaticcrossmount: false`; with the built-in issuer, it links the blob when the caller may pull
 * some repository that links it (by the rules, whatever the token names), and otherwise answers a plain
 * upload session (202) that says nothing about the blob.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, builtinAuth, getToken, writeHtpasswd } from './helpers/auth.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { blob, pushBlob, raw } from './helpers/oci.js';

const USERS = { alice: 'alice-pw', bob: 'bob-pw' };
const RULES = [
  { users: ['alice'], repositories: ['alice/**'], actions: ['pull', 'push'] },
  { users: ['bob'], repositories: ['bob/**'], actions: ['pull', 'push'] },
];

async function mount(base: string, repo: string, digest: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await raw(base, 'POST', `/v2/${repo}/blobs/uploads/?mount=${digest}`, { headers });
  return res.status;
}

async function linked(base: string, repo: string, digest: string, headers: Record<string, string> = {}): Promise<number> {
  return (await raw(base, 'HEAD', `/v2/${repo}/blobs/${digest}`, { headers })).status;
}

describe('without auth', () => {
  const b = blob('cross-mount without auth');
  it.each([
    [true, 201],
    [false, 202],
  ])('automaticCrossMount %s: a mount without from answers %i', async (automaticCrossMount, status) => {
    const berth = await startBerth({ automaticCrossMount });
    try {
      await pushBlob(berth.url, 'src/repo', b);
      expect(await mount(berth.url, 'dst/repo', b.digest)).toBe(status);
      expect(await linked(berth.url, 'dst/repo', b.digest)).toBe(status === 201 ? 200 : 404);
      // A mount that names `from` works either way.
      expect(await raw(berth.url, 'POST', `/v2/other/repo/blobs/uploads/?mount=${b.digest}&from=src/repo`).then((r) => r.status)).toBe(201);
    } finally {
      await berth.close();
    }
  });
});

describe('with the built-in token issuer', () => {
  let dir: string;
  let berth: TestBerth;
  let off: TestBerth;
  const b = blob('cross-mount with tokens');
  const token = async (base: string, user: keyof typeof USERS, scopes: string[]): Promise<Record<string, string>> =>
    bearer((await getToken(base, { user, password: USERS[user], service: 'berth', scopes })).token);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-cross-mount-'));
    const auth = builtinAuth({ htpasswd: await writeHtpasswd(dir, USERS), rules: RULES });
    berth = await startBerth({ auth });
    off = await startBerth({ auth, automaticCrossMount: false });
    for (const base of [berth.url, off.url]) {
      const push = await token(base, 'alice', ['repository:alice/src:pull,push']);
      const res = await raw(base, 'POST', `/v2/alice/src/blobs/uploads/?digest=${b.digest}`, {
        headers: { ...push, 'Content-Type': 'application/octet-stream' }, body: b.bytes,
      });
      expect(res.status).toBe(201);
    }
  });
  afterAll(async () => {
    await berth.close();
    await off.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('mounts when the token grants pull on a repository that links the blob', async () => {
    const headers = await token(berth.url, 'alice', ['repository:alice/dst:pull,push', 'repository:alice/src:pull']);
    expect(await mount(berth.url, 'alice/dst', b.digest, headers)).toBe(201);
    expect(await linked(berth.url, 'alice/dst', b.digest, headers)).toBe(200);
  });

  it('mounts when the user may pull a repository that links the blob, though the token names only the target', async () => {
    const headers = await token(berth.url, 'alice', ['repository:alice/dst2:pull,push']);
    expect(await mount(berth.url, 'alice/dst2', b.digest, headers)).toBe(201);
    const res = await raw(berth.url, 'GET', `/v2/alice/dst2/blobs/${b.digest}`, { headers });
    expect(res.status).toBe(200);
    expect(res.body.equals(b.bytes)).toBe(true);
  });

  it('answers a plain session when the user may pull no repository that links the blob', async () => {
    const headers = await token(berth.url, 'bob', ['repository:bob/dst2:pull,push']);
    const res = await raw(berth.url, 'POST', `/v2/bob/dst2/blobs/uploads/?mount=${b.digest}`, { headers });
    expect(res.status).toBe(202);
    expect(res.header('Location')).toContain('/v2/bob/dst2/blobs/uploads/');
    expect(await linked(berth.url, 'bob/dst2', b.digest, headers)).toBe(404);
  });

  it('never mounts from a repository the caller may not pull (the issuer drops that scope)', async () => {
    const headers = await token(berth.url, 'bob', ['repository:bob/dst:pull,push', 'repository:alice/src:pull']);
    expect(await mount(berth.url, 'bob/dst', b.digest, headers)).toBe(202);
    expect(await linked(berth.url, 'bob/dst', b.digest, headers)).toBe(404);
  });

  it('with storage.automaticcrossmount false, not even with pull on the source', async () => {
    const headers = await token(off.url, 'alice', ['repository:alice/dst:pull,push', 'repository:alice/src:pull']);
    expect(await mount(off.url, 'alice/dst', b.digest, headers)).toBe(202);
    expect(await linked(off.url, 'alice/dst', b.digest, headers)).toBe(404);
  });
});
