import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFiles } from './suite/helpers.js';

const files = configFiles('berth-serving-keys-');
beforeAll(files.open);
afterAll(files.close);
const { load } = files;

const MINIMAL = 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv/reg\n';

describe('http.prefix', () => {
  it.each([
    ['/registry/', '/registry'],
    ['/registry', '/registry'],
    ['/a/b/', '/a/b'],
    ['/', ''],
    ['""', ''],
  ])('%s is served as %j', async (value, prefix) => {
    const { config, warnings } = await load(`${MINIMAL}http:\n  prefix: ${value}\n`);
    expect(config.http.prefix).toBe(prefix);
    expect(warnings).toEqual([]);
  });

  it('is read from REGISTRY_HTTP_PREFIX', async () => {
    expect((await load(MINIMAL, { REGISTRY_HTTP_PREFIX: '/mirror/' })).config.http.prefix).toBe('/mirror');
  });
});

describe('storage.automaticcrossmount', () => {
  it('is on by default, off when set false in the file or by REGISTRY_STORAGE_AUTOMATICCROSSMOUNT', async () => {
    expect((await load(MINIMAL)).config.storage.automaticcrossmount).toBe(true);
    expect((await load(`${MINIMAL}  automaticcrossmount: false\n`)).config.storage.automaticcrossmount).toBe(false);
    const viaEnv = await load(MINIMAL, { REGISTRY_STORAGE_AUTOMATICCROSSMOUNT: 'false' });
    expect(viaEnv.config.storage.automaticcrossmount).toBe(false);
    expect(viaEnv.warnings).toEqual([]);
  });
});

describe('log.level', () => {
  it('accepts trace, as registry:2 does, logging at debug (Berth has nothing finer)', async () => {
    const { config, warnings } = await load(`${MINIMAL}log:\n  level: trace\n`);
    expect(config.log.level).toBe('debug');
    expect(warnings).toEqual([]);
  });
});
