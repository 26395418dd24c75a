/**
 * Hand-run probe (issue #18): CPU seconds per GiB of each server while it streams one big blob from
 * an S3 server (Ceph RGW) to curl, and of radosgw and the OSD meanwhile. Not part of `npm run bench`.
 * Several builds side by side, in alternating rounds, on one bucket (each under its own root):
 *
 *   S3_PROBE_ENDPOINT=http://127.0.0.1:PORT S3_PROBE_CEPH_DIR=DIR \
 *     npx tsx bench/s3-get-cpu-probe.ts ROUNDS NAME=path/to/dist/main.js … [registry2]
 *
 * DIR is the Ceph's data directory (scripts/ceph-s3.sh's pid files are read from it). The blob is
 * uploaded once per server (POST + PUT) when it is not there yet; the bucket is kept between runs.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createBucket } from '../test/helpers/ceph-server.js';
import { MiB, blobDigest } from './lib/blobdata.js';
import { cpuSeconds, cpuSplit, reapedChildrenCpuSeconds } from './lib/cpu.js';
import { curlGet, send, uploadMonolithic } from './lib/client.js';
import { type Server, freePort, makeTempDir, startServer, which } from './lib/proc.js';
import { configTail, registry2Binary, waitForV2 } from './lib/servers.js';

const endpoint = process.env['S3_PROBE_ENDPOINT'] ?? 'http://127.0.0.1:27731';
const cephDir = process.env['S3_PROBE_CEPH_DIR'] ?? '/tmp/berth-ceph';
const sizeMiB = Number(process.env['S3_PROBE_MIB'] ?? 1024);
const settings = { endpoint, accessKey: 'berthtestaccess', secretKey: 'berthtestsecret', region: 'us-east-1', bucket: 'probe' };
const REPO = 'probe/get';

function config(name: string, port: number, registry2: boolean): string {
  return [
    'version: 0.1',
    'log:',
    registry2 ? '  level: error' : '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  s3:',
    `    region: ${settings.region}`,
    `    regionendpoint: ${endpoint}`,
    `    bucket: ${settings.bucket}`,
    `    accesskey: ${settings.accessKey}`,
    `    secretkey: ${settings.secretKey}`,
    `    rootdirectory: /${name}`,
    '    secure: false',
    '    v4auth: true',
    '  redirect:',
    '    disable: true',
    ...configTail(port, ['health:', '  storagedriver:', '    enabled: false'], 'probe-secret'),
  ].join('\n');
}

async function daemonCpu(file: string): Promise<number> {
  const pid = Number((await readFile(join(cephDir, file), 'utf8').catch(() => '')).trim());
  return pid > 0 ? cpuSeconds(pid) : Number.NaN;
}

const rounds = Number(process.argv[2] ?? 3);
const specs = process.argv.slice(3).map((a) => (a === 'registry2' ? ['registry2', ''] : a.split('=')) as [string, string]);
await createBucket(settings, settings.bucket).catch(() => undefined);
const dir = await makeTempDir('berth-s3-cpu-probe-');
const servers: { name: string; server: Server }[] = [];
try {
  for (const [name, main] of specs) {
    const port = await freePort();
    const file = join(dir, `${name}.yml`);
    await writeFile(file, config(name, port, name === 'registry2'));
    const url = `http://127.0.0.1:${port}`;
    const server =
      name === 'registry2'
        ? startServer(which('env') ?? '/usr/bin/env', ['-u', 'AWS_CA_BUNDLE', registry2Binary(), 'serve', file], url)
        : startServer(process.execPath, [...(process.env['S3_PROBE_NODE_FLAGS'] ?? '').split(' ').filter(Boolean), main, 'serve', file], url);
    servers.push({ name, server });
    await waitForV2(server, 60_000);
    process.stdout.write(`${name}: pid ${server.pid}\n`);
  }
  const size = sizeMiB * MiB;
  const digest = blobDigest(7, size);
  for (const { name, server } of servers) {
    const head = await send(`${server.url}/v2/${REPO}/blobs/${digest}`, 'HEAD', {}, []);
    if (head.status !== 200) {
      process.stdout.write(`uploading ${sizeMiB} MiB through ${name} …\n`);
      await uploadMonolithic(server.url, REPO, 7, size);
    }
  }
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? servers : [...servers].reverse();
    for (const { name, server } of order) {
      const split0 = await cpuSplit(server.pid);
      const b = [await cpuSeconds(server.pid), await daemonCpu('client.rgw.pid'), await daemonCpu('osd.0.pid'), await reapedChildrenCpuSeconds()];
      const got = await curlGet(`${server.url}/v2/${REPO}/blobs/${digest}`);
      const split1 = await cpuSplit(server.pid);
      const a = [await cpuSeconds(server.pid), await daemonCpu('client.rgw.pid'), await daemonCpu('osd.0.pid'), await reapedChildrenCpuSeconds()];
      if (got.status !== 200 || got.bytes !== size) throw new Error(`${name}: ${got.status}, ${got.bytes} bytes`);
      const per = a.map((v, i) => (((v - (b[i] ?? 0)) * (1 << 30)) / size).toFixed(2));
      process.stdout.write(
        `${name.padEnd(12)} ${(size / 1e6 / (got.ms / 1000)).toFixed(0).padStart(5)} MB/s  CPU s/GiB: server ${per[0]} (user ${(((split1.user - split0.user) * (1 << 30)) / size).toFixed(2)}, system ${(((split1.system - split0.system) * (1 << 30)) / size).toFixed(2)})  radosgw ${per[1]}  OSD ${per[2]}  curl ${per[3]}\n`,
      );
    }
  }
} finally {
  for (const { server } of servers) await server.stop();
}
