/**
 * Real clients against a Berth with the built-in token issuer (`auth.builtin`), offline, everything on
 * 127.0.0.1 (docker treats 127.0.0.0/8 as an insecure, plain-HTTP registry; the others get
 * `--tls-verify=false`). The rules: alice may pull and push under alice/, shared/ and public/; bob may
 * only pull under shared/; anyone, signed in or not, may pull under public/.
 *
 * - docker (a private dockerd, each user with a private DOCKER_CONFIG): `docker login` as alice, push and
 *   pull; bob's `docker push` fails with docker's "denied: requested access to the resource is denied" and
 *   his pull works; after `docker logout`, an anonymous pull of public/ works and of alice/ is refused.
 * - skopeo: `copy` both ways with credentials, every digest unchanged; wrong credentials → "invalid
 *   username/password".
 * - podman: `login`, `push`, `pull` into a fresh store (auth file under the test's directory).
 * - buildah: build from scratch and `push --creds`.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bearer, builtinAuth, getToken, pushImageWith, writeHtpasswd } from './helpers/auth.js';
import { type TestBerth, startBerth } from './helpers/berth.js';
import { DOCKER_TOOLS, type Dockerd, startDockerdOrReason } from './helpers/dockerd.js';
import { dockerArchive, readOciLayout, singlePlatformImage, writeImageLayout } from './helpers/images.js';
import { ACCEPT_ALL, raw, sha256 } from './helpers/oci.js';
import {
  type ContainersStore, type RunOptions, type RunResult, containersStore, describeWithTool, describeWithTools, logToolVersions, run,
  runResult, toolAvailable, which,
} from './helpers/tools.js';

const USERS = { alice: 'alice-client-pw', bob: 'bob-client-pw' } as const;
const RULES = [
  { users: ['alice'], repositories: ['alice/**', 'shared/**', 'public/**'], actions: ['pull', 'push'] },
  { users: ['bob'], repositories: ['shared/**'], actions: ['pull'] },
  { anonymous: true, repositories: ['public/**'], actions: ['pull'] },
];

interface AuthBerth {
  readonly berth: TestBerth;
  /** `127.0.0.1:<port>` */
  readonly host: string;
  readonly dir: string;
  /** The manifest Berth serves for `repo:ref` (read with alice's token): its digest and bytes. */
  manifest(repo: string, ref: string): Promise<{ digest: string; bytes: Buffer }>;
  close(): Promise<void>;
}

async function startAuthBerth(label: string): Promise<AuthBerth> {
  // Short: podman refuses a runroot (under this directory) longer than 50 characters.
  const dir = await mkdtemp(join(tmpdir(), `berth-ac-${label}-`));
  const htpasswd = await writeHtpasswd(dir, USERS);
  const berth = await startBerth({ auth: builtinAuth({ htpasswd, rules: RULES }) });
  return {
    berth,
    host: new URL(berth.url).host,
    dir,
    async manifest(repo, ref) {
      const token = (await getToken(berth.url, { user: 'alice', password: USERS.alice, scopes: [`repository:${repo}:pull`] })).token;
      const res = await raw(berth.url, 'GET', `/v2/${repo}/manifests/${ref}`, { headers: { ...bearer(token), Accept: ACCEPT_ALL } });
      expect(res.status, res.body.toString()).toBe(200);
      const digest = res.header('Docker-Content-Digest') ?? '';
      expect(sha256(res.body)).toBe(digest);
      return { digest, bytes: res.body };
    },
    async close() {
      await berth.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// =====================================================================================================
// docker
// =====================================================================================================

describeWithTools(DOCKER_TOOLS, 'docker login, push and pull against Berth\'s built-in token issuer', () => {
  const image = singlePlatformImage('auth-docker');
  let ab: AuthBerth;
  let dockerd: Dockerd | undefined;
  let unavailable = '';
  /** A private DOCKER_CONFIG per user (and one for nobody). */
  const configs = { alice: '', bob: '', anonymous: '' };
  let pushed = '';

  const daemon = (ctx: { skip: (note?: string) => never }): Dockerd => dockerd ?? ctx.skip(unavailable);
  /** `docker <args>` against the private daemon with `config` as DOCKER_CONFIG; answers whatever the exit code. */
  const docker = (d: Dockerd, config: string, args: readonly string[], o: RunOptions = {}): Promise<RunResult> =>
    runResult(which('docker') ?? 'docker', args, { timeoutMs: 120_000, ...o, env: { ...o.env, ...d.env, DOCKER_CONFIG: config } });
  const ok = async (d: Dockerd, config: string, args: readonly string[], o: RunOptions = {}): Promise<RunResult> => {
    const r = await docker(d, config, args, o);
    expect(r.code, `$ ${r.command}\n${r.stdout}\n${r.stderr}`).toBe(0);
    return r;
  };
  const login = (d: Dockerd, user: keyof typeof USERS): Promise<RunResult> =>
    ok(d, configs[user], ['login', '--username', user, '--password-stdin', ab.host], { input: `${USERS[user]}\n` });
  /** Removes every image from the daemon, so the next pull really pulls. */
  const removeAll = async (d: Dockerd): Promise<void> => {
    const ids = (await ok(d, configs.anonymous, ['images', '-q'])).stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    if (ids.length > 0) await ok(d, configs.anonymous, ['rmi', '--force', ...new Set(ids)]);
  };

  beforeAll(async () => {
    ab = await startAuthBerth('docker');
    for (const user of Object.keys(configs) as (keyof typeof configs)[]) {
      configs[user] = join(ab.dir, `docker-config-${user}`);
      await mkdir(configs[user]);
    }
    const started = await startDockerdOrReason({ registryPorts: [Number(new URL(ab.berth.url).port)] });
    if ('reason' in started) {
      unavailable = started.reason;
      return;
    }
    dockerd = started.dockerd;
    logToolVersions(['docker', 'dockerd']);
    const archive = join(ab.dir, 'image.tar');
    await writeFile(archive, dockerArchive(image, ['berth-auth/app:v1']));
    await ok(dockerd, configs.anonymous, ['load', '-i', archive]);
  }, 120_000);

  afterAll(async () => {
    await dockerd?.close();
    await ab?.close();
  }, 60_000);

  it('docker login as alice (stored in her own DOCKER_CONFIG), docker push, docker pull: the digest docker printed is what Berth serves', async (ctx) => {
    const d = daemon(ctx);
    const wrong = await docker(d, configs.alice, ['login', '--username', 'alice', '--password-stdin', ab.host], { input: 'not-her-password\n' });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/unauthorized: invalid username or password/);
    expect(wrong.stderr).not.toContain('not-her-password');
    const out = await login(d, 'alice');
    expect(out.stdout).toContain('Login Succeeded');
    const config = JSON.parse(await readFile(join(configs.alice, 'config.json'), 'utf8')) as { auths?: Record<string, { auth?: string; identitytoken?: string }> };
    const entry = config.auths?.[ab.host];
    // Berth answered docker's `offline_token=true` with a refresh token: docker keeps it instead of the
    // password and from now on gets access tokens with POST /auth/token grant_type=refresh_token.
    expect(entry?.identitytoken, JSON.stringify(config)).toMatch(/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(JSON.stringify(config)).not.toContain(USERS.alice);

    await ok(d, configs.alice, ['tag', 'berth-auth/app:v1', `${ab.host}/alice/app:v1`]);
    const push = await ok(d, configs.alice, ['push', `${ab.host}/alice/app:v1`]);
    const m = /v1: digest: (sha256:[a-f0-9]{64}) size: \d+/.exec(push.stdout);
    expect(m, push.stdout).not.toBeNull();
    pushed = m?.[1] ?? '';
    expect((await ab.manifest('alice/app', 'v1')).digest).toBe(pushed);

    await ok(d, configs.alice, ['tag', 'berth-auth/app:v1', `${ab.host}/shared/app:v1`]);
    await ok(d, configs.alice, ['push', `${ab.host}/shared/app:v1`]);
    await ok(d, configs.alice, ['tag', 'berth-auth/app:v1', `${ab.host}/public/app:v1`]);
    await ok(d, configs.alice, ['push', `${ab.host}/public/app:v1`]);

    await removeAll(d);
    const pull = await ok(d, configs.alice, ['pull', `${ab.host}/alice/app:v1`]);
    expect(pull.stdout).toContain(`Digest: ${pushed}`);
    const inspect = await ok(d, configs.alice, ['image', 'inspect', '--format', '{{.Id}}', `${ab.host}/alice/app:v1`]);
    expect(inspect.stdout.trim()).toBe(image.config.digest);
    expect(ab.berth.errors).toEqual([]);
  }, 300_000);

  it('bob may only pull shared/: docker push fails with "denied: requested access to the resource is denied", docker pull works', async (ctx) => {
    const d = daemon(ctx);
    expect(pushed).not.toBe('');
    await login(d, 'bob');
    await ok(d, configs.bob, ['tag', `${ab.host}/alice/app:v1`, `${ab.host}/shared/app:bob`]);
    const before = await raw(ab.berth.url, 'GET', '/v2/');
    expect(before.status).toBe(401);
    const push = await docker(d, configs.bob, ['push', `${ab.host}/shared/app:bob`]);
    expect(push.code, `${push.stdout}\n${push.stderr}`).not.toBe(0);
    expect(`${push.stdout}\n${push.stderr}`).toContain('denied: requested access to the resource is denied');
    const tags = await getToken(ab.berth.url, { user: 'alice', password: USERS.alice, scopes: ['repository:shared/app:pull'] });
    const list = await raw(ab.berth.url, 'GET', '/v2/shared/app/tags/list', { headers: bearer(tags.token) });
    expect((list.json() as { tags: string[] }).tags).toEqual(['v1']);

    await removeAll(d);
    const pull = await ok(d, configs.bob, ['pull', `${ab.host}/shared/app:v1`]);
    expect(pull.stdout).toContain(`Digest: ${pushed}`);
    // bob's token does not reach alice/.
    const denied = await docker(d, configs.bob, ['pull', `${ab.host}/alice/app:v1`]);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/pull access denied|denied: requested access to the resource is denied/);
    expect(ab.berth.errors).toEqual([]);
  }, 300_000);

  it('docker login and pull against a read-only Berth (storage.maintenance.readonly.enabled) with the built-in issuer', async (ctx) => {
    const d = daemon(ctx);
    const root = join(ab.dir, 'readonly-root');
    const htpasswd = await writeHtpasswd(ab.dir, USERS, { file: 'readonly-htpasswd' });
    const auth = builtinAuth({ htpasswd, rules: RULES, signingkey: join(ab.dir, 'readonly-key.pem') });
    const writer = await startBerth({ root, auth });
    try {
      const token = (await getToken(writer.url, { user: 'alice', password: USERS.alice, scopes: ['repository:alice/ro:pull,push'] })).token;
      await pushImageWith(writer.url, 'alice/ro', 'v1', { ...image, layers: image.layers.map((l) => l.gzip) }, bearer(token));
    } finally {
      await writer.close();
    }
    const readOnly = await startBerth({ root, auth, readOnly: true });
    const config = join(ab.dir, 'docker-config-readonly');
    await mkdir(config);
    try {
      const host = new URL(readOnly.url).host;
      await ok(d, config, ['login', '--username', 'alice', '--password-stdin', host], { input: `${USERS.alice}\n` });
      await removeAll(d);
      const pull = await docker(d, config, ['pull', `${host}/alice/ro:v1`]);
      expect(pull.code, `${pull.stdout}\n${pull.stderr}`).toBe(0);
      expect(pull.stdout).toContain(`Digest: ${image.manifest.digest}`);
      expect(readOnly.errors).toEqual([]);
    } finally {
      await readOnly.close();
      await rm(root, { recursive: true, force: true });
    }
  }, 300_000);

  it('after docker logout: an anonymous pull of public/ works, of alice/ it is refused', async (ctx) => {
    const d = daemon(ctx);
    expect(pushed).not.toBe('');
    const out = await ok(d, configs.alice, ['logout', ab.host]);
    expect(out.stdout).toContain(`Removing login credentials for ${ab.host}`);
    const config = JSON.parse(await readFile(join(configs.alice, 'config.json'), 'utf8')) as { auths?: Record<string, unknown> };
    expect(config.auths?.[ab.host]).toBeUndefined();

    await removeAll(d);
    const pub = await ok(d, configs.alice, ['pull', `${ab.host}/public/app:v1`]);
    expect(pub.stdout).toContain(`Digest: ${pushed}`);
    const priv = await docker(d, configs.alice, ['pull', `${ab.host}/alice/app:v1`]);
    expect(priv.code).not.toBe(0);
    expect(priv.stderr).toMatch(/pull access denied for 127\.0\.0\.1:\d+\/alice\/app/);
    const push = await docker(d, configs.alice, ['push', `${ab.host}/public/app:v1`]);
    expect(push.code).not.toBe(0);
    expect(`${push.stdout}\n${push.stderr}`).toContain('denied: requested access to the resource is denied');
    expect(ab.berth.errors).toEqual([]);
  }, 300_000);
});

// =====================================================================================================
// skopeo
// =====================================================================================================

describeWithTool('skopeo', toolAvailable('skopeo'), 'skopeo with --creds against Berth\'s built-in token issuer', () => {
  const image = singlePlatformImage('auth-skopeo');
  let ab: AuthBerth;
  let store: ContainersStore;

  const skopeo = (args: readonly string[]): Promise<RunResult> =>
    runResult('skopeo', args, { env: { ...store.env, REGISTRY_AUTH_FILE: join(store.dir, 'auth.json') }, timeoutMs: 120_000 });

  beforeAll(async () => {
    ab = await startAuthBerth('skopeo');
    store = await containersStore(join(ab.dir, 'containers'));
    logToolVersions(['skopeo']);
  }, 60_000);

  afterAll(async () => {
    await ab?.close();
  });

  it('copy to Berth with --dest-creds and back with --src-creds: every digest unchanged', async () => {
    const layout = join(ab.dir, 'in');
    await writeImageLayout(layout, 'v1', image);
    const up = await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `alice:${USERS.alice}`, `oci:${layout}:v1`, `docker://${ab.host}/alice/skopeo:v1`]);
    expect(up.code, up.stderr).toBe(0);
    expect((await ab.manifest('alice/skopeo', 'v1')).digest).toBe(image.manifest.digest);

    const out = join(ab.dir, 'out');
    const down = await skopeo(['copy', '--src-tls-verify=false', '--src-creds', `alice:${USERS.alice}`, `docker://${ab.host}/alice/skopeo:v1`, `oci:${out}:v1`]);
    expect(down.code, down.stderr).toBe(0);
    const back = await readOciLayout(out);
    expect(back.resolve('v1').digest).toBe(image.manifest.digest);
    expect(sha256(await back.blob(image.config.digest))).toBe(image.config.digest);

    const inspect = await skopeo(['inspect', '--tls-verify=false', '--creds', `bob:${USERS.bob}`, `docker://${ab.host}/alice/skopeo:v1`]);
    expect(inspect.code).not.toBe(0); // bob may not read alice/
    expect(ab.berth.errors).toEqual([]);
  }, 180_000);

  it('wrong credentials: "invalid username/password", for a wrong password and an unknown user alike', async () => {
    for (const creds of [`alice:not-${USERS.alice}`, 'mallory:whatever']) {
      const inspect = await skopeo(['inspect', '--tls-verify=false', '--creds', creds, `docker://${ab.host}/alice/skopeo:v1`]);
      expect(inspect.code).not.toBe(0);
      expect(inspect.stderr).toContain('invalid username/password');
      const copy = await skopeo(['copy', '--src-tls-verify=false', '--src-creds', creds, `docker://${ab.host}/alice/skopeo:v1`, `oci:${join(ab.dir, 'never')}:v1`]);
      expect(copy.code).not.toBe(0);
      expect(copy.stderr).toContain('invalid username/password');
      expect(copy.stderr).not.toContain(creds.split(':')[1] ?? '');
    }
  }, 120_000);
});

// =====================================================================================================
// podman and buildah
// =====================================================================================================

describeWithTools({ podman: 'podman', buildah: 'buildah' }, 'podman login, push, pull and buildah push --creds against Berth\'s built-in token issuer', () => {
  const image = singlePlatformImage('auth-podman');
  let ab: AuthBerth;
  let first: ContainersStore;
  let fresh: ContainersStore;
  let built: ContainersStore;
  let authFile = '';

  const podman = (store: ContainersStore, args: readonly string[], input?: string): Promise<RunResult> =>
    run('podman', [...store.podmanArgs, ...args], { env: store.env, timeoutMs: 120_000, ...(input !== undefined && { input }) });

  beforeAll(async () => {
    ab = await startAuthBerth('podman');
    first = await containersStore(join(ab.dir, 'p1'));
    fresh = await containersStore(join(ab.dir, 'p2'));
    built = await containersStore(join(ab.dir, 'b'));
    authFile = join(ab.dir, 'podman-auth.json');
    logToolVersions(['podman', 'buildah']);
  }, 60_000);

  afterAll(async () => {
    await ab?.close();
  }, 60_000);

  it('podman login, push, and pull into a fresh store with the same digest', async () => {
    const login = await podman(first, ['login', '--tls-verify=false', '--authfile', authFile, '--username', 'alice', '--password-stdin', ab.host], `${USERS.alice}\n`);
    expect(login.stdout).toContain('Login Succeeded');
    const stored = JSON.parse(await readFile(authFile, 'utf8')) as { auths?: Record<string, unknown> };
    expect(stored.auths?.[ab.host]).toBeDefined();

    const archive = join(ab.dir, 'image.tar');
    await writeFile(archive, dockerArchive(image, ['localhost/berth-auth/podman:v1']));
    await podman(first, ['load', '-i', archive]);
    await podman(first, ['tag', 'localhost/berth-auth/podman:v1', `${ab.host}/alice/podman:v1`]);
    const digestFile = join(ab.dir, 'podman.digest');
    await podman(first, ['push', '--tls-verify=false', '--authfile', authFile, '--digestfile', digestFile, `${ab.host}/alice/podman:v1`]);
    const pushed = (await readFile(digestFile, 'utf8')).trim();
    expect((await ab.manifest('alice/podman', 'v1')).digest).toBe(pushed);

    await podman(fresh, ['pull', '--tls-verify=false', '--authfile', authFile, `${ab.host}/alice/podman:v1`]);
    const out = await podman(fresh, ['image', 'inspect', `${ab.host}/alice/podman:v1`]);
    const [img] = JSON.parse(out.stdout) as { Digest: string; Id: string }[];
    expect(img?.Digest).toBe(pushed);
    expect(`sha256:${img?.Id ?? ''}`).toBe(image.config.digest);

    // With an empty auth file the same pull is refused.
    await writeFile(join(ab.dir, 'empty-auth.json'), '{"auths":{}}\n');
    const anon = await runResult('podman', [...fresh.podmanArgs, 'pull', '--tls-verify=false', '--authfile', join(ab.dir, 'empty-auth.json'), `${ab.host}/alice/podman:v1`], {
      env: fresh.env, timeoutMs: 120_000,
    });
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toMatch(/unauthorized|denied|authentication required/i);
    expect(ab.berth.errors).toEqual([]);
  }, 300_000);

  it('buildah from scratch, commit, push --creds: Berth holds the manifest buildah reported', async () => {
    const buildah = (args: readonly string[]): Promise<RunResult> => run('buildah', [...built.buildahArgs, ...args], { env: built.env, timeoutMs: 120_000 });
    const ctr = (await buildah(['from', '--name', 'berth-auth-work', 'scratch'])).stdout.trim();
    const file = join(ab.dir, 'hello.txt');
    await writeFile(file, 'pushed by buildah with --creds\n');
    await buildah(['copy', ctr, file, '/hello.txt']);
    await buildah(['commit', ctr, 'localhost/berth-auth/built:v1']);
    const digestFile = join(ab.dir, 'buildah.digest');
    await buildah(['push', '--tls-verify=false', '--creds', `alice:${USERS.alice}`, '--digestfile', digestFile, 'localhost/berth-auth/built:v1', `docker://${ab.host}/alice/built:v1`]);
    const pushed = (await readFile(digestFile, 'utf8')).trim();
    expect((await ab.manifest('alice/built', 'v1')).digest).toBe(pushed);
    const refused = await runResult('buildah', [...built.buildahArgs, 'push', '--tls-verify=false', '--creds', `bob:${USERS.bob}`, 'localhost/berth-auth/built:v1', `docker://${ab.host}/shared/built:v1`], {
      env: built.env, timeoutMs: 120_000,
    });
    expect(refused.code).not.toBe(0);
    expect(ab.berth.errors).toEqual([]);
  }, 300_000);
});
