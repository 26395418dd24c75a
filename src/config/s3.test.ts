import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from './parse.js';
import { ConfigError } from './raw.js';
import type { Config, S3StorageConfig } from './schema.js';

let dir = '';
let seq = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-config-s3-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(text: string, env: Record<string, string> = {}): Promise<{ config: Config; warnings: string[] }> {
  seq += 1;
  const file = join(dir, `config-${seq}.yml`);
  await writeFile(file, text);
  const warnings: string[] = [];
  const config = await loadConfig({ file, env, warn: (m) => warnings.push(m) });
  return { config, warnings };
}

function s3Of(config: Config): S3StorageConfig {
  if (config.storage.driver !== 's3') throw new Error(`driver is ${config.storage.driver}`);
  return config.storage.s3;
}

const MIN = 'version: 0.1\nstorage:\n  s3:\n    region: us-east-1\n    bucket: registry\n';
const MiB = 1024 * 1024;

describe('storage.s3', () => {
  it("reads every registry:2 key it supports, with registry:2's spelling and value forms", async () => {
    const { config, warnings } = await load(`version: 0.1
storage:
  s3:
    region: eu-west-1
    regionendpoint: http://ceph.internal:7480
    bucket: images
    accesskey: AKIA1
    secretkey: s3cr3t
    forcepathstyle: false
    secure: false
    skipverify: true
    v4auth: true
    rootdirectory: /registry
    chunksize: "20971520"
    storageclass: reduced_redundancy
    objectacl: bucket-owner-full-control
    multipartcopychunksize: 33554432
    multipartcopymaxconcurrency: 16
    multipartcopythresholdsize: 33554432
    usedualstack: false
    accelerate: false
    usefipsendpoint: false
    encrypt: false
    useragent: my-registry
  redirect:
    disable: true
`);
    expect(s3Of(config)).toEqual({
      region: 'eu-west-1', regionendpoint: 'http://ceph.internal:7480', bucket: 'images', accesskey: 'AKIA1',
      secretkey: 's3cr3t', forcepathstyle: false, secure: false, skipverify: true, rootdirectory: '/registry',
      chunksize: 20 * MiB, storageclass: 'REDUCED_REDUNDANCY', objectacl: 'bucket-owner-full-control',
      multipartcopychunksize: 32 * MiB, multipartcopymaxconcurrency: 16, multipartcopythresholdsize: 32 * MiB,
      usedualstack: false, accelerate: false, usefipsendpoint: false,
    } satisfies S3StorageConfig);
    expect(config.storage.redirect).toEqual({ disable: true });
    expect(warnings).toEqual(['config: storage.s3.useragent: ignored: not supported yet by Berth']);
  });

  it('defaults: path style with an endpoint (as registry:2 2.8), 10 MiB parts, STANDARD, private, redirects on', async () => {
    const withEndpoint = s3Of((await load(`${MIN}    regionendpoint: rgw.local:7480\n`)).config);
    expect(withEndpoint).toMatchObject({
      forcepathstyle: true, secure: true, chunksize: 10 * MiB, storageclass: 'STANDARD', objectacl: 'private',
      rootdirectory: '', accesskey: undefined, secretkey: undefined, multipartcopythresholdsize: 5 * 1024 * MiB,
    });
    const aws = await load(MIN);
    expect(s3Of(aws.config)).toMatchObject({ forcepathstyle: false, regionendpoint: undefined });
    expect(aws.config.storage.redirect).toEqual({ disable: false });
  });

  it('is configured wholly from REGISTRY_* variables, as registry:2 allows', async () => {
    const { config } = await load('version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv\n', {
      REGISTRY_STORAGE: 's3',
      REGISTRY_STORAGE_S3_REGION: 'us-east-1',
      REGISTRY_STORAGE_S3_BUCKET: 'from-env',
      REGISTRY_STORAGE_S3_REGIONENDPOINT: 'http://127.0.0.1:7480',
      REGISTRY_STORAGE_S3_CHUNKSIZE: '5242880',
      REGISTRY_STORAGE_REDIRECT_DISABLE: 'true',
    });
    expect(s3Of(config)).toMatchObject({ bucket: 'from-env', regionendpoint: 'http://127.0.0.1:7480', chunksize: 5 * MiB });
    expect(config.storage.redirect.disable).toBe(true);
  });

  it('storage.redirect.disable is read with any driver', async () => {
    const { config } = await load('version: 0.1\nstorage:\n  inmemory: {}\n  redirect: {disable: true}\n');
    expect(config.storage.redirect).toEqual({ disable: true });
  });

  it("loads config.example.yaml's commented s3 example once uncommented; its stated defaults are the defaults", async () => {
    const example = await readFile(fileURLToPath(new URL('../../config.example.yaml', import.meta.url)), 'utf8');
    const lines = example.split('\n');
    const start = lines.findIndex((l) => l.startsWith('  # s3:'));
    const end = lines.findIndex((l, i) => i > start && l.startsWith('  delete:'));
    expect(start).toBeGreaterThan(0);
    const block = lines.slice(start, end).map((l) => l.replace(/^ {2}# ?/, '  ')).join('\n');
    const { config, warnings } = await load(`version: 0.1\nstorage:\n${block}\n`);
    expect(warnings).toEqual([]);
    const stated = s3Of(config);
    expect(stated).toMatchObject({ region: 'us-east-1', bucket: 'registry', regionendpoint: 'http://ceph.internal:7480', rootdirectory: '/registry' });
    const minimal = await load('version: 0.1\nstorage:\n  s3: {region: us-east-1, bucket: registry, regionendpoint: "http://ceph.internal:7480"}\n');
    expect({ ...s3Of(minimal.config), accesskey: stated.accesskey, secretkey: stated.secretkey, rootdirectory: '/registry' }).toEqual(stated);
    expect(config.storage.redirect).toEqual(minimal.config.storage.redirect);
  });

  it.each([
    ['no region', 'version: 0.1\nstorage:\n  s3: {bucket: b}\n', 'storage.s3.region', /missing/],
    ['no bucket', 'version: 0.1\nstorage:\n  s3: {region: r}\n', 'storage.s3.bucket', /missing/],
    ['a bucket with a slash', `${MIN.replace('bucket: registry', 'bucket: a/b')}`, 'storage.s3.bucket', /not a bucket name/],
    ['chunksize under 5 MiB', `${MIN}    chunksize: 1048576\n`, 'storage.s3.chunksize', /must be from 5242880 to 5368709120, got 1048576/],
    ['chunksize not a number', `${MIN}    chunksize: 10MB\n`, 'storage.s3.chunksize', /expected a whole number, got "10MB"/],
    ['v4auth false', `${MIN}    v4auth: false\n`, 'storage.s3.v4auth', /signature version 4 only/],
    ['encrypt', `${MIN}    encrypt: true\n`, 'storage.s3.encrypt', /not supported yet/],
    ['keyid', `${MIN}    keyid: arn:aws:kms:k\n`, 'storage.s3.keyid', /not supported yet/],
    ['redirectendpoint', `${MIN}    redirectendpoint: https://cdn.example\n`, 'storage.s3.redirectendpoint', /not supported yet/],
    ['a glacier storage class', `${MIN}    storageclass: GLACIER\n`, 'storage.s3.storageclass', /expected one of NONE, STANDARD/],
    ['an unknown ACL', `${MIN}    objectacl: everyone\n`, 'storage.s3.objectacl', /expected one of private/],
    ['an ftp endpoint', `${MIN}    regionendpoint: ftp://x\n`, 'storage.s3.regionendpoint', /expected a URL/],
    ['an unknown key', `${MIN}    bucketname: x\n`, 'storage.s3.bucketname', /unknown key/],
    ['secure not a boolean', `${MIN}    secure: maybe\n`, 'storage.s3.secure', /true or false/],
  ])('refuses %s, naming the key', async (_name, text, key, message) => {
    const err = await load(text).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe(key);
    expect((err as ConfigError).message).toMatch(message);
    expect((err as ConfigError).message.startsWith(`config: ${key}: `)).toBe(true);
  });
});
