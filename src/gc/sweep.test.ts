/**
 * The sweep's two guards: the grace period (with an injected clock, no sleeps) and the link gate (a
 * link that lands while the sweep runs keeps its blob; one that comes after the delete fails cleanly).
 */
import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRegistryError } from '../errors.js';
import { type LinkGate, createLinkGate } from '../storage/maintenance/link-gate.js';
import { paths } from '../storage/paths.js';
import { createRegistry } from '../storage/registry.js';
import { parseRepoName, parseTag } from '../storage/reference.js';
import type { GcEvent, GcReport } from './report.js';
import { collectGarbage } from './run.js';
import {
  DRIVER_KINDS, type Fixture, imageBlobs, makeFixture, pushBlob, pushImage, pushIndex, putManifest, storedBlobs,
} from './suite/fixtures.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

describe.each(DRIVER_KINDS)('sweep over the %s driver', (kind) => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await makeFixture(kind);
  });
  afterEach(async () => {
    await fx.cleanup();
  });

  const collect = (
    opts: { graceMs?: number; deleteUntagged?: boolean; onEvent?: (e: GcEvent) => void } = {},
  ): Promise<GcReport> => {
    fx.offset.ms += 5; // the run begins after every push so far
    return collectGarbage(fx.registry, {
      graceMs: opts.graceMs ?? 0,
      deleteUntagged: opts.deleteUntagged ?? false,
      dryRun: false,
      now: fx.clock,
      ...(opts.onEvent && { onEvent: opts.onEvent }),
    });
  };

  describe('grace period', () => {
    it('keeps an unreferenced blob until it is older than the grace period', async () => {
      const loose = await pushBlob(fx.registry, 'app', 'loose');
      fx.offset.ms = 30 * MINUTE;
      expect(await collect({ graceMs: HOUR })).toMatchObject({ swept: 0 });
      expect((await storedBlobs(fx.registry)).has(loose)).toBe(true);
      fx.offset.ms = 2 * HOUR;
      expect(await collect({ graceMs: HOUR })).toMatchObject({ swept: 1, bytesFreed: 5 });
      expect((await storedBlobs(fx.registry)).has(loose)).toBe(false);
    });

    it('keeps a young untagged manifest and what it references under deleteUntagged', async () => {
      const child = await pushImage(fx.registry, 'app', 'child'); // a multi-platform push, index not there yet
      fx.offset.ms = 10 * MINUTE;
      const report = await collect({ graceMs: HOUR, deleteUntagged: true });
      expect(report).toMatchObject({ swept: 0, untaggedRemoved: 0 });
      const left = await storedBlobs(fx.registry);
      expect(imageBlobs(child).every((d) => left.has(d))).toBe(true);
      fx.offset.ms = 2 * HOUR;
      expect(await collect({ graceMs: HOUR, deleteUntagged: true })).toMatchObject({ swept: 3, untaggedRemoved: 1 });
    });

    // Needs file times set by hand, so a root on disk: skipped with that reason on the other drivers.
    const noRoot = kind === 'filesystem' ? undefined : `the ${kind} driver has no root whose file times a test can set`;
    if (noRoot !== undefined) console.log(`[sweep over the ${kind} driver] skipping the link-age case: ${noRoot}`);
    it.skipIf(noRoot !== undefined)('keeps an old blob while a link to it is younger than the grace period', async () => {
      if (fx.root === undefined) throw new Error('the filesystem fixture has no root');
      const d = await pushBlob(fx.registry, 'one', 'old bytes');
      const threeHoursAgo = new Date(Date.now() - 3 * HOUR);
      await utimes(join(fx.root, paths.blobData(d)), threeHoursAgo, threeHoursAgo);
      await utimes(join(fx.root, paths.layerLink(parseRepoName('one'), d)), threeHoursAgo, threeHoursAgo);
      expect(await fx.registry.repository(parseRepoName('two')).blobs.mountFrom(parseRepoName('one'), d)).toBeDefined();
      fx.gate.forgetBefore(Number.MAX_SAFE_INTEGER); // only the new link file's time protects it now
      fx.offset.ms = 10 * MINUTE;
      expect(await collect({ graceMs: HOUR })).toMatchObject({ swept: 0 });
      fx.offset.ms = 2 * HOUR;
      expect(await collect({ graceMs: HOUR })).toMatchObject({ swept: 1 });
    });
  });

  describe('link gate', () => {
    it('keeps a blob that a mount links while the sweep is about to delete it', async () => {
      const d = await pushBlob(fx.registry, 'one', 'mount me');
      const mounts: Promise<unknown>[] = [];
      const report = await collect({
        onEvent: (e) => {
          // The mount takes the digest's shared lock now, before the sweep asks for it.
          if (e.type === 'blob-eligible' && e.digest === d) {
            mounts.push(fx.registry.repository(parseRepoName('two')).blobs.mountExisting(d));
          }
        },
      });
      expect(await Promise.all(mounts)).toEqual([{ digest: d, size: 8 }]);
      expect(report.swept).toBe(0);
      expect(await fx.registry.repository(parseRepoName('two')).blobs.stat(d)).toEqual({ digest: d, size: 8 });
    });

    // Replicas on one storage, the collector on the first, a mount on the second acknowledged just before
    // the sweep reaches its blob (the collector's gate lets that sweep start only once the mount has
    // answered). With one gate between them the sweep sees the link and keeps the blob; with a gate of
    // its own per replica (no Redis) it cannot, and the acknowledged blob is deleted.
    it.each([
      ['one shared gate', true],
      ['a gate of its own per replica', false],
    ] as const)('a mount on another replica just before the sweep, with %s: kept = %s', async (_label, shared) => {
      const d = await pushBlob(fx.registry, 'one', 'mount me');
      const other = createRegistry({ driver: fx.driver, deleteEnabled: true, linkGate: shared ? fx.gate : createLinkGate(fx.clock) });
      let mounted: Promise<unknown> = Promise.resolve();
      const gate: LinkGate = {
        ...fx.gate,
        sweep: async (digest, op) => {
          await mounted;
          return fx.gate.sweep(digest, op);
        },
      };
      const collecting = createRegistry({ driver: fx.driver, deleteEnabled: true, linkGate: gate });
      fx.offset.ms += 5; // the run begins after the push
      const report = await collectGarbage(collecting, {
        graceMs: 0, deleteUntagged: false, dryRun: false, now: fx.clock,
        onEvent: (e) => {
          if (e.type === 'blob-eligible' && e.digest === d) mounted = other.repository(parseRepoName('two')).blobs.mountExisting(d);
        },
      });
      expect(await mounted).toEqual({ digest: d, size: 8 }); // acknowledged either way
      expect(report.swept).toBe(shared ? 0 : 1);
      expect(await other.repository(parseRepoName('two')).blobs.stat(d)).toEqual(shared ? { digest: d, size: 8 } : undefined);
    });

    it('a mount after the delete finds no blob and links nothing', async () => {
      const d = await pushBlob(fx.registry, 'one', 'mount me');
      expect((await collect()).swept).toBe(1);
      expect(await fx.registry.repository(parseRepoName('two')).blobs.mountExisting(d)).toBeUndefined();
    });

    it('keeps the layers of a manifest PUT that lands after the mark read its repository', async () => {
      await pushImage(fx.registry, 'zzz', 'later', { tag: 'v1' }); // marked after 'app'
      const layer = await pushBlob(fx.registry, 'app', 'layer');
      const config = await pushBlob(fx.registry, 'app', '{}');
      const doc = {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 2 },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size: 5 }],
      };
      let put: Promise<unknown> | undefined;
      const kept: string[] = [];
      const report = await collect({
        onEvent: (e) => {
          if (e.type === 'repository' && e.repo === 'zzz') put = putManifest(fx.registry, 'app', doc, 'v1');
          if (e.type === 'blob-kept') kept.push(e.digest);
        },
      });
      await put;
      expect(report.swept).toBe(0);
      expect(kept).toEqual(expect.arrayContaining([layer, config]));
      const m = await fx.registry.repository(parseRepoName('app')).manifests.get({ tag: parseTag('v1') });
      expect(m.content.toString()).toBe(JSON.stringify(doc));
      expect(await fx.registry.blobs.stat(layer)).toBeDefined();
      expect(await fx.registry.blobs.stat(config)).toBeDefined();
    });

    it('a manifest PUT after its layer was swept is refused with MANIFEST_BLOB_UNKNOWN', async () => {
      const layer = await pushBlob(fx.registry, 'app', 'layer');
      const config = await pushBlob(fx.registry, 'app', '{}');
      await collect();
      const doc = {
        schemaVersion: 2,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 2 },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size: 5 }],
      };
      const err = await putManifest(fx.registry, 'app', doc, 'v1').catch((e: unknown) => e);
      expect(isRegistryError(err, 'MANIFEST_BLOB_UNKNOWN')).toBe(true);
    });

    it('keeps an untagged child (and its layers) that an index PUT names while the collector runs', async () => {
      await pushImage(fx.registry, 'zzz', 'later', { tag: 'v1' }); // marked after 'multi'
      const child = await pushImage(fx.registry, 'multi', 'child', { layers: ['child-layer'] });
      const sbom = await pushImage(fx.registry, 'multi', 'sbom', { subject: child, layers: ['sbom-layer'] });
      let put: Promise<{ digest: string }> | undefined;
      const report = await collect({
        deleteUntagged: true,
        onEvent: (e) => {
          if (e.type === 'manifest-eligible' && e.digest === child.digest) put = pushIndex(fx.registry, 'multi', [child], 'latest');
        },
      });
      const idx = await put;
      expect(idx).toBeDefined();
      expect(report.untaggedRemoved).toBe(0);
      const left = await storedBlobs(fx.registry);
      for (const d of [...imageBlobs(child), ...imageBlobs(sbom)]) expect(left.has(d)).toBe(true);
      expect((await collect({ deleteUntagged: true })).swept).toBe(0); // now tagged through the index
    });
  });
});
