/**
 * Durable notifications on S3 without redis (issue #18): the queue of each endpoint is a journal of
 * objects in the bucket (src/notifications/object-queue.ts), outside `docker/registry/v2`. A real
 * `berth serve` process on the run's Ceph RGW pushes images while the receiver refuses every event, is
 * SIGKILLed with those events queued, and a new process on the same bucket delivers every one of them
 * once the receiver accepts, then removes the delivered objects.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type BerthProcess, startBerthProcess } from './helpers/berth-process.js';
import { type S3TestSettings, createBucket, deleteBucket, describeWithS3, listKeys, s3StorageYaml } from './helpers/ceph.js';
import { type Image, makeImage, pushImage } from './helpers/oci.js';
import { freePort } from './helpers/tools.js';
import { type Webhook, startWebhook } from './helpers/webhook.js';

const ROOT = 'registry';
const JOURNAL = `${ROOT}/berth/notifications/`;

describeWithS3('notifications on S3 without redis: a journal in the bucket', (s3: S3TestSettings) => {
  const bucket = `berth-notify-${randomBytes(4).toString('hex')}`;
  let work = '';
  let hook: Webhook;
  let config = '';
  const running: BerthProcess[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-notify-s3-'));
    await createBucket(s3, bucket);
    hook = await startWebhook();
    hook.answer = () => 503; // every delivery fails (and is retried) until the test says otherwise
    config = `version: 0.1
log:
  level: info
  accesslog:
    disabled: true
http:
  addr: 127.0.0.1:${await freePort()}
  secret: notify-s3
storage:
${s3StorageYaml(s3, bucket, { rootdirectory: `/${ROOT}` }).join('\n')}
  maintenance:
    uploadpurging:
      enabled: false
notifications:
  endpoints:
    - name: counter
      url: ${hook.url}
      timeout: 2s
      threshold: 3
      backoff: 100ms
      ignore:
        actions: [pull]
`;
  }, 60_000);

  afterAll(async () => {
    for (const p of running) await p.stop();
    await hook?.stop();
    await deleteBucket(s3, bucket).catch(() => undefined);
    if (work !== '') await rm(work, { recursive: true, force: true });
  }, 60_000);

  const start = async (): Promise<{ process: BerthProcess; url: string }> => {
    const p = await startBerthProcess({ config, configPath: join(work, 'config.yml') });
    running.push(p);
    const addr = /addr: (\S+)/.exec(config)?.[1] as string;
    return { process: p, url: `http://${addr}` };
  };

  it('keeps the queued events of a SIGKILLed process in the bucket and delivers every one from the next process', async () => {
    const first = await start();
    expect(first.process.log()).not.toMatch(/queued in memory/);
    const pushed: { repo: string; tag: string; image: Image }[] = [];
    for (let i = 0; i < 4; i++) {
      const image = makeImage(18_900 + i);
      const repo = `journal/r${i % 2}`;
      await pushImage(first.url, repo, `t${i}`, image); // acknowledged: its events are in the bucket
      pushed.push({ repo, tag: `t${i}`, image });
    }
    await hook.waitFor(() => hook.requests.length >= 2); // deliveries under way, and refused
    expect(hook.accepted()).toEqual([]);
    first.process.child.kill('SIGKILL');
    await first.process.exited;
    const left = (await listKeys(s3, bucket, JOURNAL)).filter((k) => k.endsWith('.jsonl'));
    expect(left.length).toBeGreaterThan(0);

    hook.answer = () => 200;
    await start();
    const manifestEvents = (): string[] =>
      hook
        .accepted()
        .filter((e) => e.action === 'push' && e.target.tag !== undefined)
        .map((e) => `${e.target.repository}:${e.target.tag}@${e.target.digest}`);
    const expected = pushed.map((p) => `${p.repo}:${p.tag}@${p.image.manifest.digest}`);
    await hook.waitFor(() => expected.every((x) => manifestEvents().includes(x)), 30_000);
    // Every blob push too (config and layers of each image), each at least once.
    const blobDigests = new Set(hook.accepted().filter((e) => e.action === 'push').map((e) => `${e.target.repository}@${e.target.digest}`));
    for (const p of pushed) for (const b of [p.image.config, ...p.image.layers]) expect(blobDigests.has(`${p.repo}@${b.digest}`)).toBe(true);
    // Delivered objects are removed (the receiver answered 2xx for all of them).
    const deadline = Date.now() + 15_000;
    let remaining = await listKeys(s3, bucket, JOURNAL);
    while (remaining.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      remaining = await listKeys(s3, bucket, JOURNAL);
    }
    expect(remaining).toEqual([]);
    // The registry:2 layout holds no journal object.
    expect((await listKeys(s3, bucket, `${ROOT}/docker/`)).some((k) => k.includes('notifications'))).toBe(false);
  }, 120_000);
});
