import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/parse.js';
import { createLogger } from '../log.js';
import { digestOf } from '../storage/digest.js';
import { createDriver } from '../storage/driver/factory.js';
import { parseRepoName } from '../storage/reference.js';
import { createRegistry } from '../storage/registry.js';
import { startCollector } from './collector.js';

describe('the online collector', () => {
  it('answers busy while a run goes, and stop() still waits for that run, not for the busy answer', async () => {
    const config = await loadConfig({ file: undefined, env: { REGISTRY_STORAGE_MAINTENANCE_GC_GRACEPERIOD: '0s' } });
    const registry = createRegistry({ driver: createDriver({ kind: 'inmemory' }), deleteEnabled: true });
    // An unreferenced blob whose link is in progress: the run's sweep waits for it at the link gate.
    const uploads = registry.repository(parseRepoName('x')).uploads;
    const session = await uploads.start();
    const d = digestOf(Buffer.from('held'));
    await uploads.commit(session.id, d, Readable.from([Buffer.from('held')]));
    let release = (): void => undefined;
    let linking = (): void => undefined;
    const linkHeld = new Promise<void>((r) => (linking = r));
    const held = registry.linkGate.link([d], () => {
      linking();
      return new Promise<void>((r) => (release = r));
    });
    await linkHeld;
    const order: string[] = [];
    const log = createLogger({ level: 'error', format: 'json', write: () => undefined });
    const collector = startCollector({ registry, config, log, report: () => order.push('run reported') });
    const first = collector.runNow();
    expect(await collector.runNow()).toEqual({ status: 'busy' });
    const stopped = collector.stop().then(() => order.push('stop resolved'));
    release();
    await held;
    await stopped;
    await first.catch(() => undefined);
    expect(order).toEqual(['run reported', 'stop resolved']);
  });
});
