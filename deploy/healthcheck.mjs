// @ts-check
/**
 * The container image's HEALTHCHECK (copied to /opt/berth/healthcheck.mjs): `GET /readyz` on the address
 * Berth listens on, read with Berth's own loader from the configuration file (argv[2], default
 * /etc/docker/registry/config.yml) and the REGISTRY_* environment, exactly as `serve` reads them, so
 * `REGISTRY_HTTP_ADDR=:5055` moves the check along with the server. Exit 0 on 200, 1 otherwise (503 while
 * the storage check fails or the server shuts down, a refused connection, a timeout, a bad config),
 * printing one line that `docker inspect` shows under State.Health.Log.
 *
 * Node, because slim images have no curl or wget. With `http.tls` the check speaks HTTPS without
 * verifying the certificate (it only asks its own process on loopback); with a client CA required it
 * asks the debug listener's /readyz instead when `http.debug.addr` is set.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { loadConfig } from './dist/config/parse.js';

const TIMEOUT_MS = 4000;
const DEFAULT_CONFIG = '/etc/docker/registry/config.yml';

/**
 * The URL of `path` on a listen address as registry:2 writes it (`:5000`, `0.0.0.0:5000`,
 * `host:5000`, `[::]:5000`), wildcard hosts replaced by loopback.
 * @param {string} addr
 * @param {string} scheme
 * @param {string} path
 */
function urlFor(addr, scheme, path) {
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(addr);
  if (m === null) throw new Error(`cannot read the listen address ${JSON.stringify(addr)}`);
  const port = Number(m[3]);
  if (port === 0) throw new Error(`the listen address ${addr} has port 0: nothing to check`);
  let host = m[1] ?? m[2] ?? '';
  if (host === '' || host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
}

/**
 * The status of a GET of `url` (TLS certificates are not verified).
 * @param {string} url
 * @returns {Promise<number>}
 */
function get(url) {
  return new Promise((resolve, reject) => {
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(url, { method: 'GET', timeout: TIMEOUT_MS, rejectUnauthorized: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** @returns {Promise<string>} the URL to check */
async function target() {
  const config = await loadConfig({ file: process.argv[2] ?? DEFAULT_CONFIG, env: process.env, warn: () => undefined });
  const { tls, debug } = config.http;
  if (tls !== undefined && tls.clientcas.length > 0 && debug.addr !== undefined) return urlFor(debug.addr, 'http', '/readyz');
  return urlFor(config.http.addr, tls === undefined ? 'http' : 'https', '/readyz');
}

try {
  const url = await target();
  const status = await get(url);
  console.log(`${status === 200 ? 'ready' : 'not ready'}: ${url} answered ${status}`);
  process.exitCode = status === 200 ? 0 : 1;
} catch (err) {
  console.log(`not ready: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
