/**
 * The metrics on the debug listener (`berth serve` with `http.debug.addr`): `GET /metrics` in the
 * Prometheus text format, with the garbage collection counters moved by a real `POST /debug/gc` run.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Serving, serve } from '../src/cli/serve.js';
import { makeImage, pushImage, raw } from './helpers/oci.js';
import { sleep } from './helpers/tools.js';

const servers: Serving[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function start(storageExtra = ''): Promise<Serving & { readonly debugUrl: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-metrics-'));
  dirs.push(dir);
  const config = join(dir, 'config.yml');
  await writeFile(config, [
    'version: 0.1',
    'log: {level: error}',
    'http: {addr: "127.0.0.1:0", debug: {addr: "127.0.0.1:0"}}',
    `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(dir, 'root'))}}, delete: {enabled: true}, maintenance: {gc: {graceperiod: 0s}}${storageExtra}}`,
    '',
  ].join('\n'));
  const serving = await serve(config, {});
  servers.push(serving);
  if (!serving.debug) throw new Error('no debug listener');
  return { ...serving, debugUrl: serving.debug.url };
}

/** Every sample of the exposition, series (name plus labels) → value. */
async function scrape(url: string): Promise<Map<string, number>> {
  const res = await raw(url, 'GET', '/metrics');
  expect(res.status).toBe(200);
  expect(res.header('Content-Type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of res.body.toString('utf8').split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

describe('GET /metrics on the debug listener', () => {
  it('shows the usage ratio of each quota once a push in its glob was checked', async () => {
    const s = await start(', quotas: [{repositories: ["team/**"], storage: 100KiB, maxrepositories: 4}]');
    const img = makeImage(5);
    await pushImage(s.running.url, 'team/app', 'v1', img);
    const used = [img.config, ...img.layers, img.manifest].reduce((sum, b) => sum + b.size, 0);
    const after = await scrape(s.debugUrl);
    expect(after.get('berth_quota_usage{quota="team/**",kind="storage"}')).toBe(used);
    expect(after.get('berth_quota_limit{quota="team/**",kind="storage"}')).toBe(100 * 1024);
    expect(after.get('berth_quota_usage_ratio{quota="team/**",kind="storage"}')).toBeCloseTo(used / (100 * 1024), 6);
    expect(after.get('berth_quota_usage_ratio{quota="team/**",kind="repositories"}')).toBe(0.25);
  });

  it('counts a POST /debug/gc run that swept a deleted image', async () => {
    const s = await start();
    const before = await scrape(s.debugUrl);
    expect(before.get('berth_gc_runs_total{result="ok"}')).toBe(0);
    expect(before.get('berth_gc_blobs_swept_total')).toBe(0);
    expect(before.has('process_cpu_user_seconds_total')).toBe(true);

    const img = makeImage(3);
    await pushImage(s.running.url, 'app', 'v1', img);
    expect((await raw(s.running.url, 'DELETE', `/v2/app/manifests/${img.manifest.digest}`)).status).toBe(202);
    await sleep(5); // the run must begin after the deletion
    const gc = await raw(s.debugUrl, 'POST', '/debug/gc');
    expect(gc.status).toBe(200);
    const report = gc.json() as { swept: number; bytesFreed: number };
    const blobs = [img.config, ...img.layers, img.manifest];
    expect(report).toMatchObject({ swept: blobs.length, bytesFreed: blobs.reduce((n, b) => n + b.size, 0) });

    const after = await scrape(s.debugUrl);
    expect(after.get('berth_gc_runs_total{result="ok"}')).toBe(1);
    expect(after.get('berth_gc_runs_total{result="error"}')).toBe(0);
    expect(after.get('berth_gc_blobs_swept_total')).toBe(report.swept);
    expect(after.get('berth_gc_blobs_swept_total')).toBeGreaterThan(0);
    expect(after.get('berth_gc_bytes_freed_total')).toBe(report.bytesFreed);
    expect(after.get('berth_gc_bytes_freed_total')).toBeGreaterThan(0);
    expect(after.get('berth_gc_duration_seconds_count')).toBe(1);
    expect(after.get('berth_gc_last_run_timestamp_seconds')).toBeGreaterThan(0);
    expect(after.has('berth_gc_blobs_marked')).toBe(true);
  });

  it('reports the listing index as ready once its rebuild is done', async () => {
    const s = await start();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await scrape(s.debugUrl)).get('berth_index_ready') !== 1) await sleep(20);
    expect((await scrape(s.debugUrl)).get('berth_index_ready')).toBe(1);
  });

  it('counts HTTP requests, bytes, storage calls and upload sessions after real traffic', async () => {
    const s = await start();
    const before = await scrape(s.debugUrl);
    expect(before.get('berth_upload_sessions_total{event="completed"}')).toBe(0);
    const img = makeImage(4);
    expect((await pushImage(s.running.url, 'traffic', 'v1', img)).status).toBe(201);
    const pulled = await raw(s.running.url, 'GET', `/v2/traffic/blobs/${img.layers[0]?.digest ?? ''}`);
    expect(pulled.status).toBe(200);
    expect((await raw(s.running.url, 'GET', '/v2/traffic/manifests/nope')).status).toBe(404);
    // A session that is started, then cancelled.
    const post = await raw(s.running.url, 'POST', '/v2/traffic/blobs/uploads/');
    expect(post.status).toBe(202);
    expect((await raw(s.running.url, 'DELETE', new URL(post.header('Location') ?? '', s.running.url).pathname)).status).toBe(204);

    const after = await scrape(s.debugUrl);
    const moved = (series: string): number => (after.get(series) ?? 0) - (before.get(series) ?? 0);
    expect(moved('registry_http_requests_total{handler="manifest",method="PUT",code="201"}')).toBe(1);
    expect(moved('registry_http_requests_total{handler="manifest",method="GET",code="404"}')).toBe(1);
    expect(moved('registry_http_requests_total{handler="blob",method="GET",code="200"}')).toBe(1);
    expect(moved('registry_http_request_duration_seconds_count{handler="manifest",method="PUT",code="201"}')).toBe(1);
    // The pulled layer's bytes went out; the pushed image's bytes came in.
    const layerSize = img.layers[0]?.size ?? 0;
    expect(moved('registry_http_response_size_bytes_sum{handler="blob"}')).toBeGreaterThan(layerSize);
    const pushedBytes = [img.config, ...img.layers].reduce((n, b) => n + b.size, 0);
    expect(moved('registry_http_request_size_bytes_sum{handler="blob-upload-start"}')).toBeGreaterThan(pushedBytes);
    // Every blob went up in one POST ?digest=: sessions completed at once; one more was started and cancelled.
    expect(moved('berth_upload_sessions_total{event="completed"}')).toBe(1 + img.layers.length);
    expect(moved('berth_upload_sessions_total{event="started"}')).toBe(1);
    expect(moved('berth_upload_sessions_total{event="cancelled"}')).toBe(1);
    expect(after.get('berth_uploads_in_progress')).toBe(0);
    expect(after.get('registry_http_in_flight_requests{handler="manifest"}')).toBe(0);
    expect(moved('registry_storage_action_seconds_count{driver="filesystem",action="putContent"}')).toBeGreaterThan(0);
    expect(moved('registry_storage_action_seconds_count{driver="filesystem",action="writer"}')).toBeGreaterThan(0);
  });

  it('serves health on the debug listener', async () => {
    const s = await start();
    const health = await raw(s.debugUrl, 'GET', '/debug/health');
    expect(health.status).toBe(200);
    expect(health.json()).toEqual({});
    expect((await raw(s.debugUrl, 'GET', '/healthz')).status).toBe(200);
    expect((await raw(s.debugUrl, 'GET', '/readyz')).status).toBe(200);
  });

  it('answers 405 to other methods on /metrics', async () => {
    const s = await start();
    const res = await raw(s.debugUrl, 'POST', '/metrics');
    expect(res.status).toBe(405);
    expect(res.header('Allow')).toBe('GET, HEAD');
  });
});
