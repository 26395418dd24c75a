/**
 * Webhook notifications end to end: the real `serve()` (src/cli/serve.ts) started from a config file
 * with two `notifications.endpoints`, a webhook receiver (node:http, test/helpers/webhook.ts) and a
 * private dockerd (test/helpers/dockerd.ts) pushing and pulling an image made offline.
 *
 * - `docker push` gives blob push events (config and layers) and a manifest push event with the tag,
 *   with registry:2's fields; a push to a second repository gives mount events; `docker pull` gives
 *   manifest and blob pull events; deletes give delete events.
 * - The second endpoint ignores pulls (`ignore.actions`) and blob events (`ignoredmediatypes:
 *   [application/octet-stream]`) and gets only manifest pushes and deletes.
 * - Restart: with the receiver down, a push is queued; Berth stops (its queue is on disk under
 *   `<root>/berth/notifications/`, the registry:2 layout untouched) and starts again on the same root;
 *   once the receiver is back, every queued event arrives exactly once, with the id it was queued with.
 * - Crash: a `berth serve` process is killed with SIGKILL right after a push was answered (receiver
 *   down); after a new start every event of that push arrives (no tools needed for this one).
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Serving, serve } from '../src/cli/serve.js';
import { startBerthProcess } from './helpers/berth-process.js';
import { DOCKER_TOOLS, type Dockerd, startDockerdOrReason } from './helpers/dockerd.js';
import { dockerArchive, singlePlatformImage } from './helpers/images.js';
import { ACCEPT_ALL, MT, makeImage, pushImage, raw, sha256 } from './helpers/oci.js';
import { describeWithTools, freePort, logToolVersions, sleep } from './helpers/tools.js';
import { type Webhook, type WebhookEvent, startWebhook } from './helpers/webhook.js';

const EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface ManifestDoc {
  mediaType: string;
  config: { digest: string; size: number; mediaType: string };
  layers: { digest: string; size: number; mediaType: string }[];
}

describeWithTools(DOCKER_TOOLS, 'notifications: registry:2 webhook events from docker push and pull, durable across a restart', () => {
  const image = singlePlatformImage('notify');
  let work = '';
  let root = '';
  let configFile = '';
  let port = 0;
  let host = '';
  let hook: Webhook;
  let serving: Serving | undefined;
  let dockerd: Dockerd | undefined;
  let unavailable = '';
  /** What docker printed as the pushed manifest's digest, and that manifest as Berth holds it. */
  let pushed = '';
  let manifest: ManifestDoc;
  let manifestBytes: Buffer = Buffer.alloc(0);

  const daemon = (ctx: { skip: (note?: string) => never }): Dockerd => dockerd ?? ctx.skip(unavailable);
  /** Events the receiver accepted at `path` (`/all` or `/filtered`). */
  const at = (path: string): WebhookEvent[] => hook.requests.filter((r) => r.path === path && r.status === 200).flatMap((r) => r.events);
  const describeEvent = (e: WebhookEvent): string => `${e.action} ${e.target.repository ?? ''} ${e.target.tag ?? e.target.digest ?? ''}`;

  /** The debug listener's metrics once `ok` holds of them, asked every 100 ms; after `tries` asks, the last answer. */
  async function metricsWhen(s: Serving, ok: (metrics: string) => boolean, tries: number): Promise<string> {
    for (let i = 0; ; i++) {
      const metrics = (await raw(s.debug?.url ?? '', 'GET', '/metrics')).body.toString('utf8');
      if (ok(metrics) || i + 1 >= tries) return metrics;
      await sleep(100);
    }
  }

  async function start(): Promise<Serving> {
    serving = await serve(configFile, {});
    return serving;
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-notifications-'));
    root = join(work, 'root');
    hook = await startWebhook();
    port = await freePort();
    host = `127.0.0.1:${port}`;
    configFile = join(work, 'config.yml');
    await writeFile(configFile, `version: 0.1
log: {level: error}
http:
  addr: ${host}
  secret: notifications-test
  debug: {addr: "127.0.0.1:0"}
storage:
  filesystem: {rootdirectory: ${JSON.stringify(root)}}
  delete: {enabled: true}
notifications:
  events:
    includereferences: true
  endpoints:
    - name: all
      url: http://127.0.0.1:${hook.port}/all
      headers:
        X-Berth-Test: [notifications]
      timeout: 2s
      threshold: 3
      backoff: 200ms
    - name: writes-only
      url: http://127.0.0.1:${hook.port}/filtered
      ignoredmediatypes: [application/octet-stream]
      ignore:
        actions: [pull]
      backoff: 200ms
`);
    await start();
    const started = await startDockerdOrReason({ registryPorts: [port] });
    if ('reason' in started) {
      unavailable = started.reason;
      return;
    }
    dockerd = started.dockerd;
    logToolVersions(['docker', 'dockerd']);
  }, 120_000);

  afterAll(async () => {
    await dockerd?.close();
    await serving?.stop();
    await hook?.stop();
    if (work !== '') await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('docker push: blob push events for the config and each layer, then the manifest push with its tag, as registry:2 sends them', async (ctx) => {
    const d = daemon(ctx);
    const archive = join(work, 'notify.tar');
    await writeFile(archive, dockerArchive(image, ['berth-test/notify:v1']));
    await d.docker(['load', '-i', archive]);
    await d.docker(['tag', 'berth-test/notify:v1', `${host}/notify/app:v1`]);
    const push = await d.docker(['push', `${host}/notify/app:v1`], { timeoutMs: 120_000 });
    pushed = /v1: digest: (sha256:[a-f0-9]{64})/.exec(push.stdout)?.[1] ?? '';
    expect(pushed, push.stdout).not.toBe('');
    const res = await raw(`http://${host}`, 'GET', `/v2/notify/app/manifests/${pushed}`, { headers: { Accept: ACCEPT_ALL } });
    manifestBytes = res.body;
    manifest = JSON.parse(res.body.toString('utf8')) as ManifestDoc;
    expect(manifest.mediaType).toBe(MT.dockerManifest);
    expect(manifest.config.digest).toBe(image.config.digest);

    await hook.waitFor(() => at('/all').some((e) => e.action === 'push' && e.target.tag === 'v1'));
    const events = at('/all').filter((e) => e.target.repository === 'notify/app');
    const blobPushes = events.filter((e) => e.action === 'push' && e.target.mediaType === 'application/octet-stream');
    const blobs = [manifest.config, ...manifest.layers];
    expect(blobPushes.map((e) => e.target.digest).sort()).toEqual(blobs.map((b) => b.digest).sort());
    for (const e of blobPushes) {
      const blob = blobs.find((b) => b.digest === e.target.digest);
      expect(e.target).toEqual({
        mediaType: 'application/octet-stream', size: blob?.size, digest: blob?.digest, length: blob?.size, repository: 'notify/app',
        url: `http://${host}/v2/notify/app/blobs/${blob?.digest}`,
      });
      expect(e.request).toMatchObject({ method: 'PUT', host });
    }
    const manifestPush = events.find((e) => e.action === 'push' && e.target.tag === 'v1');
    expect(manifestPush).toMatchObject({
      target: {
        mediaType: MT.dockerManifest, size: manifestBytes.length, digest: pushed, length: manifestBytes.length, repository: 'notify/app',
        url: `http://${host}/v2/notify/app/manifests/${pushed}`, tag: 'v1',
        references: blobs.map((b) => ({ mediaType: b.mediaType, size: b.size, digest: b.digest })),
      },
      request: { method: 'PUT', host, addr: expect.stringMatching(/^127\.0\.0\.1:\d+$/), useragent: expect.stringMatching(/^docker\/20\./) },
      actor: {},
      source: { addr: `${hostname()}:${port}`, instanceID: expect.stringMatching(UUID) },
    });
    expect(sha256(manifestBytes)).toBe(pushed);
    for (const e of events) {
      expect(e.id).toMatch(UUID);
      expect(e.request.id).not.toBe('');
      expect(Date.parse(e.timestamp)).toBeGreaterThan(Date.now() - 300_000);
    }
    // Every request had registry:2's Content-Type and the configured header, and one event.
    for (const r of hook.requests) {
      expect(r.headers['content-type']).toBe(EVENTS_MEDIA_TYPE);
      expect(r.events).toHaveLength(1);
    }
    expect(hook.requests.filter((r) => r.path === '/all').every((r) => r.headers['x-berth-test'] === 'notifications')).toBe(true);
    // The filtered endpoint ignores blob events and pulls: of this push it gets the manifest only.
    await hook.waitFor(() => at('/filtered').length > 0);
    expect(at('/filtered').map(describeEvent)).toEqual([`push notify/app v1`]);
  }, 180_000);

  it('docker push to a second repository: mount events naming the source repository', async (ctx) => {
    const d = daemon(ctx);
    await d.docker(['tag', `${host}/notify/app:v1`, `${host}/notify/copy:v1`]);
    const push = await d.docker(['push', `${host}/notify/copy:v1`], { timeoutMs: 120_000 });
    expect(push.stdout).toContain('Mounted from notify/app');
    await hook.waitFor(() => at('/all').some((e) => e.action === 'push' && e.target.repository === 'notify/copy' && e.target.tag === 'v1'));
    const mounts = at('/all').filter((e) => e.action === 'mount');
    expect(mounts.map((e) => e.target.digest).sort()).toEqual(manifest.layers.map((l) => l.digest).sort());
    for (const m of mounts) {
      expect(m.target).toMatchObject({ repository: 'notify/copy', fromRepository: 'notify/app', mediaType: 'application/octet-stream' });
      expect(m.request.method).toBe('POST');
    }
  }, 180_000);

  it('docker pull: a manifest pull event with the tag and blob pull events; the filtered endpoint gets none of them', async (ctx) => {
    const d = daemon(ctx);
    await d.docker(['rmi', 'berth-test/notify:v1', `${host}/notify/app:v1`, `${host}/notify/copy:v1`]);
    const before = hook.requests.length;
    const filteredBefore = at('/filtered').length;
    await d.docker(['pull', `${host}/notify/app:v1`], { timeoutMs: 120_000 });
    const blobDigests = [manifest.config, ...manifest.layers].map((b) => b.digest).sort();
    const pulls = (): WebhookEvent[] => hook.requests.slice(before).filter((r) => r.path === '/all').flatMap((r) => r.events).filter((e) => e.action === 'pull');
    await hook.waitFor(() => blobDigests.every((dg) => pulls().some((e) => e.target.digest === dg)));
    const manifestPull = pulls().find((e) => e.target.digest === pushed);
    expect(manifestPull).toMatchObject({
      target: { mediaType: MT.dockerManifest, repository: 'notify/app', tag: 'v1', size: manifestBytes.length },
      request: { method: expect.stringMatching(/^(GET|HEAD)$/) },
    });
    for (const digest of blobDigests) {
      expect(pulls().find((e) => e.target.digest === digest)).toMatchObject({ target: { mediaType: 'application/octet-stream', repository: 'notify/app' }, request: { method: 'GET' } });
    }
    await sleep(300);
    expect(at('/filtered').length).toBe(filteredBefore);
  }, 180_000);

  it('deletes: a manifest deleted by tag and by digest give delete events (one per tag the digest still had), which the filtered endpoint gets too', async () => {
    const manifest = await raw(`http://${host}`, 'GET', `/v2/notify/copy/manifests/${pushed}`, { headers: { Accept: ACCEPT_ALL } });
    const tagged = await raw(`http://${host}`, 'PUT', '/v2/notify/copy/manifests/v2', {
      headers: { 'Content-Type': manifest.header('Content-Type') ?? '' }, body: manifest.body,
    });
    expect(tagged.status).toBe(201);
    expect((await raw(`http://${host}`, 'DELETE', '/v2/notify/copy/manifests/v1')).status).toBe(202);
    expect((await raw(`http://${host}`, 'DELETE', `/v2/notify/copy/manifests/${pushed}`)).status).toBe(202);
    await hook.waitFor(() => at('/filtered').filter((e) => e.action === 'delete').length === 3);
    expect(at('/filtered').filter((e) => e.action === 'delete').map((e) => e.target)).toEqual([
      { repository: 'notify/copy', tag: 'v1' },
      { repository: 'notify/copy', tag: 'v2' },
      { digest: pushed, repository: 'notify/copy' },
    ]);
  });

  it('receiver down → docker push → Berth stopped and started again on the same root → receiver up: every queued event arrives exactly once, with its id', async (ctx) => {
    const d = daemon(ctx);
    const first = serving;
    if (first === undefined) throw new Error('Berth is not running');
    // The earlier tests' events must have left both queues (Berth saw the receiver's answers) before the
    // receiver stops: one delivered but not yet taken off its queue would be sent again after the restart.
    const queuedBefore = /berth_notifications_events_pending\{endpoint="[^"]+"\} [1-9]/;
    expect(await metricsWhen(first, (m) => !queuedBefore.test(m), 100)).not.toMatch(queuedBefore);
    await hook.stop();
    const seenBefore = new Set(hook.requests.flatMap((r) => r.events.map((e) => e.id)));
    await d.docker(['tag', `${host}/notify/app:v1`, `${host}/notify/later:v2`]);
    await d.docker(['push', `${host}/notify/later:v2`], { timeoutMs: 120_000 });
    const metrics = await raw(first.debug?.url ?? '', 'GET', '/metrics');
    const pendingAll = Number(/berth_notifications_events_pending\{endpoint="all"\} (\d+)/.exec(metrics.body.toString('utf8'))?.[1]);
    expect(pendingAll).toBeGreaterThanOrEqual(3); // mounts or pushes of the blobs, and the manifest
    await first.stop();
    serving = undefined;

    // What Berth kept: one queue per endpoint under <root>/berth/notifications/, nothing inside the registry:2 tree.
    const queued = { all: await queuedEvents('all'), filtered: await queuedEvents('writes-only') };
    console.log(`queued while the receiver was down: ${queued.all.map((e) => `${describeEvent(e)} (${e.request.method})`).join('; ')}`);
    expect(queued.all).toHaveLength(pendingAll);
    expect(queued.all.some((e) => e.action === 'push' && e.target.repository === 'notify/later' && e.target.tag === 'v2')).toBe(true);
    expect(queued.filtered.map(describeEvent)).toEqual(['push notify/later v2']);
    expect((await readdir(join(root, 'docker', 'registry', 'v2'))).sort()).toEqual(['blobs', 'repositories']);

    const second = await start();
    await sleep(500); // Berth retries while the receiver is still down
    await hook.start();
    const arrived = (path: string): WebhookEvent[] => at(path).filter((e) => !seenBefore.has(e.id));
    await hook.waitFor(() => arrived('/all').length >= queued.all.length && arrived('/filtered').length >= queued.filtered.length);
    await sleep(500); // anything sent twice would show up now
    expect(arrived('/all').map((e) => e.id)).toEqual(queued.all.map((e) => e.id));
    expect(arrived('/filtered').map((e) => e.id)).toEqual(queued.filtered.map((e) => e.id));
    expect(arrived('/all')).toEqual(queued.all); // byte for byte the events that were queued, from the first instance
    const firstInstance = queued.all[0]?.source.instanceID;
    const metricsAfter = await metricsWhen(second, (m) => m.includes('berth_notifications_events_pending{endpoint="all"} 0'), 50);
    expect(metricsAfter).toContain('berth_notifications_events_pending{endpoint="all"} 0');
    expect(metricsAfter).toContain(`berth_notifications_events_delivered_total{endpoint="all"} ${queued.all.length}`);

    // Events made after the restart come from the new instance.
    await raw(`http://${host}`, 'GET', '/v2/notify/later/manifests/v2', { headers: { Accept: ACCEPT_ALL } });
    const queuedIds = new Set(queued.all.map((e) => e.id));
    const isFresh = (e: WebhookEvent): boolean => !queuedIds.has(e.id) && e.action === 'pull' && e.target.repository === 'notify/later';
    await hook.waitFor(() => arrived('/all').some(isFresh));
    const fresh = arrived('/all').find(isFresh);
    expect(fresh?.source.instanceID).toMatch(UUID);
    expect(fresh?.source.instanceID).not.toBe(firstInstance);
  }, 240_000);

  /** The undelivered events of an endpoint's queue on disk, read as the queue format says: segments from the cursor on. */
  async function queuedEvents(endpoint: string): Promise<WebhookEvent[]> {
    const base = join(root, 'berth', 'notifications');
    const dir = (await readdir(base)).find((n) => n.startsWith(`${endpoint}-`));
    if (dir === undefined) throw new Error(`no queue for ${endpoint} in ${base}`);
    const cursor = (await readFile(join(base, dir, 'cursor'), 'utf8')).trim().split(' ').map(Number);
    const segments = (await readdir(join(base, dir))).filter((f) => f.endsWith('.log')).sort();
    const events: WebhookEvent[] = [];
    for (const segment of segments) {
      const seq = Number(segment.slice(0, -'.log'.length));
      if (seq < (cursor[0] ?? 0)) continue;
      const data = await readFile(join(base, dir, segment));
      const from = seq === cursor[0] ? (cursor[1] ?? 0) : 0;
      for (const line of data.subarray(from).toString('utf8').split('\n')) if (line !== '') events.push(JSON.parse(line) as WebhookEvent);
    }
    return events;
  }
});

describe('notifications: a crash right after a push loses none of its events', () => {
  it('kill -9 of `berth serve` right after the push was answered: after a new start every event of the push arrives', async () => {
    const work = await mkdtemp(join(tmpdir(), 'berth-notifications-crash-'));
    const hook = await startWebhook();
    await hook.stop(); // the receiver is down while Berth runs the first time
    const port = await freePort();
    const config = [
      'version: 0.1',
      'log: {level: info}',
      `http: {addr: "127.0.0.1:${port}", secret: crash-test}`,
      `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(work, 'root'))}}}`,
      `notifications: {endpoints: [{name: crash, url: "http://127.0.0.1:${hook.port}/crash", threshold: 1, backoff: 100ms}]}`,
      '',
    ].join('\n');
    const configPath = join(work, 'config.yml');
    try {
      const first = await startBerthProcess({ config, configPath });
      const img = makeImage(42, { docker: true });
      const res = await pushImage(`http://127.0.0.1:${port}`, 'crash/app', 'v1', img);
      first.child.kill('SIGKILL');
      expect((await first.exited).signal).toBe('SIGKILL');
      const digest = res.header('Docker-Content-Digest');

      const second = await startBerthProcess({ config, configPath });
      try {
        await hook.start();
        const wanted = [...[img.config, ...img.layers].map((b) => `push ${b.digest}`), `push v1 ${digest ?? ''}`];
        const got = (): string[] => hook.accepted().map((e) => (e.target.tag === undefined ? `${e.action} ${e.target.digest ?? ''}` : `${e.action} ${e.target.tag} ${e.target.digest ?? ''}`));
        await hook.waitFor(() => wanted.every((w) => got().includes(w)));
        await sleep(300);
        // Nothing was delivered before the crash, so nothing can have been delivered twice.
        expect(got().sort()).toEqual([...wanted].sort());
        expect(new Set(hook.accepted().map((e) => e.id)).size).toBe(wanted.length);
      } finally {
        await second.stop();
      }
    } finally {
      await hook.stop();
      await rm(work, { recursive: true, force: true });
    }
  }, 120_000);
});
