/**
 * `http.tls`: Berth serving HTTPS with a certificate from a CA generated here (openssl), optionally
 * requiring client certificates (`clientcas`), with `minimumtls` enforced; skopeo verifying the chain
 * (and refusing without the CA); docker pushing and pulling through TLS; a certificate that does not
 * match its key refused at start-up with the key named.
 *
 * docker always treats registries on 127.0.0.0/8 as insecure: it speaks TLS to them (Berth answers
 * nothing else on a TLS port, so a push that works went through TLS) but then neither verifies the chain
 * nor reads /etc/docker/certs.d, so it cannot present a client certificate. Chain verification is shown
 * with skopeo and Node, client certificates with Node.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Serving, serve } from '../src/cli/serve.js';
import { DOCKER_TOOLS, type Dockerd, startDockerdOrReason } from './helpers/dockerd.js';
import { dockerArchive, singlePlatformImage, writeImageLayout } from './helpers/images.js';
import {
  type ContainersStore, type ToolAvailability, containersStore, describeWithTool, describeWithTools, run, runResult, toolAvailable, which,
} from './helpers/tools.js';

interface Pki {
  readonly dir: string;
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCa: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** A certificate for another key than serverKey. */
  readonly otherCert: string;
}

const openssl = (args: readonly string[], cwd: string) => run('openssl', args, { cwd, timeoutMs: 30_000 });

/** A CA, a server certificate for localhost and 127.0.0.1, and a second CA with a client certificate. */
async function makePki(dir: string): Promise<Pki> {
  const p = (name: string): string => join(dir, name);
  await writeFile(p('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await writeFile(p('client.ext'), 'extendedKeyUsage=clientAuth\n');
  const ca = async (name: string, cn: string): Promise<void> => {
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`,
      '-days', '2', '-subj', `/CN=${cn}`], dir);
  };
  const leaf = async (name: string, cn: string, issuer: string, ext: string): Promise<void> => {
    await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '2', '-extfile', ext], dir);
  };
  await ca('ca', 'Berth test CA');
  await leaf('server', 'localhost', 'ca', 'server.ext');
  await leaf('other', 'localhost', 'ca', 'server.ext');
  await ca('client-ca', 'Berth test client CA');
  await leaf('client', 'berth-test-client', 'client-ca', 'client.ext');
  return {
    dir, ca: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key'),
    clientCa: p('client-ca.crt'), clientCert: p('client.crt'), clientKey: p('client.key'), otherCert: p('other.crt'),
  };
}

async function serveTls(dir: string, name: string, tls: readonly string[]): Promise<Serving> {
  const config = join(dir, `${name}.yml`);
  await writeFile(config, [
    'version: 0.1',
    'log: {level: error}',
    'http:',
    '  addr: 127.0.0.1:0',
    '  secret: tls-test',
    '  tls:',
    ...tls.map((l) => `    ${l}`),
    `storage: {filesystem: {rootdirectory: ${JSON.stringify(join(dir, `${name}-root`))}}}`,
    '',
  ].join('\n'));
  return serve(config, {});
}

interface HttpsAnswer { status: number; location: string | undefined; protocol: string | undefined }

function httpsGet(url: string, path: string, o: { ca?: Buffer; cert?: Buffer; key?: Buffer; maxVersion?: 'TLSv1.2'; method?: string } = {}): Promise<HttpsAnswer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({
      host: u.hostname, port: u.port, path, method: o.method ?? 'GET', servername: 'localhost',
      ...(o.ca && { ca: o.ca }), ...(o.cert && { cert: o.cert }), ...(o.key && { key: o.key }), ...(o.maxVersion && { maxVersion: o.maxVersion }),
      agent: false,
    }, (res) => {
      const protocol = 'getProtocol' in res.socket && typeof res.socket.getProtocol === 'function' ? String(res.socket.getProtocol()) : undefined;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, protocol }));
    });
    req.on('error', reject);
    req.end();
  });
}

const pkiReady = (async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-tls-'));
  return makePki(dir);
})();

const OPENSSL: ToolAvailability = which('openssl') ? { ok: true } : { ok: false, reason: 'openssl not found on PATH (apt-get install -y openssl)' };

describeWithTool('openssl', OPENSSL, 'http.tls', () => {
  let pki: Pki;
  let plain: Serving;
  let mutual: Serving;
  let modern: Serving;

  beforeAll(async () => {
    pki = await pkiReady;
    plain = await serveTls(pki.dir, 'plain', [`certificate: ${pki.serverCert}`, `key: ${pki.serverKey}`]);
    mutual = await serveTls(pki.dir, 'mutual', [`certificate: ${pki.serverCert}`, `key: ${pki.serverKey}`, `clientcas: [${pki.clientCa}]`]);
    modern = await serveTls(pki.dir, 'modern', [`certificate: ${pki.serverCert}`, `key: ${pki.serverKey}`, 'minimumtls: tls1.3']);
  }, 60_000);

  afterAll(async () => {
    await plain?.stop();
    await mutual?.stop();
    await modern?.stop();
  });

  it('serves HTTPS that verifies against the CA, with https Location URLs', async () => {
    expect(plain.running.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = await readFile(pki.ca);
    expect((await httpsGet(plain.running.url, '/v2/', { ca })).status).toBe(200);
    const post = await httpsGet(plain.running.url, '/v2/tls/app/blobs/uploads/', { ca, method: 'POST' });
    expect(post.status).toBe(202);
    expect(post.location).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/v2\/tls\/app\/blobs\/uploads\//);
  });

  it('is refused by a client that does not trust the CA, and answers no plain HTTP', async () => {
    await expect(httpsGet(plain.running.url, '/v2/')).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    const plainHttp = plain.running.url.replace('https:', 'http:');
    await expect(fetch(`${plainHttp}/v2/`)).rejects.toThrow();
  });

  it('requires a client certificate from clientcas', async () => {
    const ca = await readFile(pki.ca);
    await expect(httpsGet(mutual.running.url, '/v2/', { ca })).rejects.toThrow();
    const withCert = await httpsGet(mutual.running.url, '/v2/', { ca, cert: await readFile(pki.clientCert), key: await readFile(pki.clientKey) });
    expect(withCert.status).toBe(200);
    // A certificate from the server's CA is not one of the client CAs'.
    const wrong = { ca, cert: await readFile(pki.serverCert), key: await readFile(pki.serverKey) };
    await expect(httpsGet(mutual.running.url, '/v2/', wrong)).rejects.toThrow();
  });

  it('enforces minimumtls', async () => {
    const ca = await readFile(pki.ca);
    await expect(httpsGet(modern.running.url, '/v2/', { ca, maxVersion: 'TLSv1.2' })).rejects.toThrow();
    const ok = await httpsGet(modern.running.url, '/v2/', { ca });
    expect(ok.status).toBe(200);
    expect(ok.protocol).toBe('TLSv1.3');
    expect((await httpsGet(plain.running.url, '/v2/', { ca, maxVersion: 'TLSv1.2' })).protocol).toBe('TLSv1.2');
  });

  it('refuses to start with a certificate that does not match its key, naming http.tls', async () => {
    await expect(serveTls(pki.dir, 'mismatch', [`certificate: ${pki.otherCert}`, `key: ${pki.serverKey}`])).rejects.toThrow(/^config: http\.tls: /);
    await expect(serveTls(pki.dir, 'missing', [`certificate: ${join(pki.dir, 'nope.crt')}`, `key: ${pki.serverKey}`]))
      .rejects.toThrow(/^config: http\.tls\.certificate: cannot read/);
  });
});

describeWithTool('skopeo', toolAvailable('skopeo'), 'skopeo through http.tls', () => {
  let pki: Pki;
  let berth: Serving;
  let store: ContainersStore;
  let layout = '';

  beforeAll(async () => {
    pki = await pkiReady;
    berth = await serveTls(pki.dir, 'skopeo', [`certificate: ${pki.serverCert}`, `key: ${pki.serverKey}`]);
    store = await containersStore(join(pki.dir, 'containers-skopeo'));
    layout = join(pki.dir, 'layout');
    await writeImageLayout(layout, 'v1', singlePlatformImage('tls-skopeo'));
  }, 60_000);
  afterAll(async () => {
    await berth?.stop();
  });

  it('pushes with the CA in --dest-cert-dir, verifying the chain, and fails without it', async () => {
    const ref = `docker://localhost:${new URL(berth.running.url).port}/tls/skopeo:v1`;
    const untrusted = await runResult('skopeo', ['copy', `oci:${layout}:v1`, ref], { env: store.env, timeoutMs: 60_000 });
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toMatch(/x509|certificate/);
    const certDir = join(pki.dir, 'skopeo-certs');
    await mkdir(certDir, { recursive: true });
    await writeFile(join(certDir, 'ca.crt'), await readFile(pki.ca));
    await run('skopeo', ['copy', '--dest-cert-dir', certDir, `oci:${layout}:v1`, ref], { env: store.env, timeoutMs: 120_000 });
    const inspect = await run('skopeo', ['inspect', '--cert-dir', certDir, ref], { env: store.env, timeoutMs: 60_000 });
    expect(JSON.parse(inspect.stdout)).toMatchObject({ Name: expect.stringContaining('/tls/skopeo') });
  });
});

describeWithTools(DOCKER_TOOLS, 'docker through TLS', () => {
  let pki: Pki;
  let berth: Serving;
  let dockerd: Dockerd | undefined;
  let unavailable = '';

  beforeAll(async () => {
    pki = await pkiReady;
    berth = await serveTls(pki.dir, 'docker', [`certificate: ${pki.serverCert}`, `key: ${pki.serverKey}`]);
    const started = await startDockerdOrReason();
    if ('reason' in started) unavailable = started.reason;
    else dockerd = started.dockerd;
  }, 180_000);

  afterAll(async () => {
    await dockerd?.close();
    await berth?.stop();
    await rm(pki.dir, { recursive: true, force: true });
  }, 60_000);

  it('pushes and pulls an image over HTTPS', async (ctx) => {
    const d = dockerd ?? ctx.skip(unavailable);
    const img = singlePlatformImage('tls-docker');
    const tag = `localhost:${new URL(berth.running.url).port}/tls/docker:v1`;
    const archive = join(pki.dir, 'docker.tar');
    await writeFile(archive, dockerArchive(img, [tag]));
    await d.docker(['load', '-i', archive]);
    const push = await d.docker(['push', tag], { timeoutMs: 120_000 });
    expect(push.stdout).toMatch(/digest: sha256:[0-9a-f]{64}/);
    // The same port refuses plain HTTP, so the push above went through TLS.
    await expect(fetch(`${berth.running.url.replace('https:', 'http:')}/v2/`)).rejects.toThrow();
    await d.docker(['rmi', tag]);
    const pull = await d.docker(['pull', tag], { timeoutMs: 120_000 });
    expect(pull.stdout).toContain(`Downloaded newer image for ${tag}`);
  }, 300_000);
});
