/**
 * The 85% event of quotas (issue #16): a real `berth serve` (src/cli/serve.ts) from a config file with
 * a storage quota and two notification endpoints, a real webhook receiver, and blob pushes over HTTP.
 *
 * - The push that takes the quota's usage across 85% of its limit gives one `quota` event, with the
 *   quota's name, key, namespace, kind, usage before and after, and limit; the target is the repository
 *   and the blob whose link crossed the mark. The next push, still above the mark, gives none.
 * - Once a blob delete takes usage back below the mark, the next push that crosses it gives another.
 * - An endpoint that ignores the action (`ignore.actions: [quota]`) gets the push events and no quota event.
 * - `berth_quota_warnings_total` counts the crossings.
 *
 * "Gives none" is checked in delivery order, not by waiting: an endpoint's events arrive in the order
 * they were queued, and a push's quota event is queued before the push's own `push` event, so once the
 * receiver has the push event of a push, it has every quota event that push made.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Serving, serve } from '../src/cli/serve.js';
import { type Blob, blob, pushBlob, randomBytesSeeded, raw } from './helpers/oci.js';
import { type Webhook, type WebhookEvent, startWebhook } from './helpers/webhook.js';

const KIB = 1024;
const LIMIT = 100 * KIB;

describe('quota events: a push across 85% of a limit is a notification event', () => {
  let work = '';
  let hook: Webhook;
  let serving: Serving;
  let url = '';

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-quota-events-'));
    hook = await startWebhook();
    const config = join(work, 'config.yml');
    await writeFile(config, `version: 0.1
log: {level: error}
http:
  addr: 127.0.0.1:0
  secret: quota-events-test
  debug: {addr: "127.0.0.1:0"}
storage:
  filesystem: {rootdirectory: ${JSON.stringify(join(work, 'root'))}}
  delete: {enabled: true}
  quotas:
    - repositories: ["team/**"]
      storage: 100KiB
notifications:
  endpoints:
    - name: all
      url: http://127.0.0.1:${hook.port}/all
      backoff: 200ms
    - name: no-quota
      url: http://127.0.0.1:${hook.port}/no-quota
      backoff: 200ms
      ignore:
        actions: [quota, pull]
`);
    serving = await serve(config, {});
    url = serving.running.url;
  }, 60_000);

  afterAll(async () => {
    await serving?.stop();
    await hook?.stop();
    if (work !== '') await rm(work, { recursive: true, force: true });
  }, 60_000);

  const at = (path: string): WebhookEvent[] => hook.requests.filter((r) => r.path === path && r.status === 200).flatMap((r) => r.events);
  const quotaEvents = (path: string): WebhookEvent[] => at(path).filter((e) => e.action === 'quota');
  /** Pushes `b` to `repo` and waits until both endpoints have its push event (and so anything queued before it). */
  async function pushAndSettle(repo: string, b: Blob): Promise<void> {
    await pushBlob(url, repo, b);
    const delivered = (path: string): boolean => at(path).some((e) => e.action === 'push' && e.target.digest === b.digest && e.target.repository === repo);
    await hook.waitFor(() => delivered('/all') && delivered('/no-quota'));
  }

  it('sends one event for the push that crosses the mark, none for the next one above it, and one again after usage fell below', async () => {
    const first = blob(randomBytesSeeded(80 * KIB, 1)); // 80%
    const crossing = blob(randomBytesSeeded(8 * KIB, 2)); // 88%
    const above = blob(randomBytesSeeded(4 * KIB, 3)); // 92%
    await pushAndSettle('team/a', first);
    expect(quotaEvents('/all')).toEqual([]);
    await pushAndSettle('team/b', crossing);
    const events = quotaEvents('/all');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      action: 'quota',
      target: { repository: 'team/b', digest: crossing.digest },
      quota: {
        name: 'team/**', key: 'storage.quotas[0]', repositories: ['team/**'], namespace: 'team', kind: 'storage',
        previous: 80 * KIB, usage: 88 * KIB, limit: LIMIT, threshold: 0.85,
      },
      request: { useragent: 'berth-quota' },
    });
    await pushAndSettle('team/b', above);
    expect(quotaEvents('/all')).toHaveLength(1);

    // Back below the mark (92% - 8% = 84%), then across it again.
    const deleted = await raw(url, 'DELETE', `/v2/team/b/blobs/${crossing.digest}`);
    expect(deleted.status).toBe(202);
    const again = blob(randomBytesSeeded(2 * KIB, 4)); // 86%
    await pushAndSettle('team/c', again);
    expect(quotaEvents('/all').map((e) => [e.target.repository, e.target.digest, e.quota?.previous, e.quota?.usage]))
      .toEqual([['team/b', crossing.digest, 80 * KIB, 88 * KIB], ['team/c', again.digest, 84 * KIB, 86 * KIB]]);

    // Outside the glob nothing counts.
    await pushAndSettle('other/x', blob(randomBytesSeeded(50 * KIB, 5)));
    expect(quotaEvents('/all')).toHaveLength(2);

    // The endpoint that ignores the action got the pushes and no quota event.
    expect(quotaEvents('/no-quota')).toEqual([]);
    expect(at('/no-quota').filter((e) => e.action === 'push')).toHaveLength(5);

    const metrics = await raw(serving.debug?.url ?? '', 'GET', '/metrics');
    expect(metrics.body.toString('utf8')).toContain('berth_quota_warnings_total{quota="team/**",kind="storage"} 2');
  }, 60_000);
});
