/**
 * An upstream's credentials for the mirror (`proxy.upstreams[].username`/`password`, or
 * `credentialsfile`: a docker config.json). The file is read once and then watched: a change to it
 * (written in place, or replaced by a rename, as editors and secret managers do) is read at the next
 * token or Basic request; between changes no request reads it. Each read answers a new object, which
 * is how upstream-auth.ts knows its cached tokens were got with other credentials.
 */
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { UpstreamConfig } from '../config/proxy.js';
import type { Logger } from '../log.js';
import type { Credentials } from '../mirror/upstream-auth.js';

/** The credentials of one upstream, and the watch to stop at shutdown. */
export interface UpstreamCredentials {
  get(): Promise<Credentials | undefined>;
  close(): void;
}

/** The credentials `u` configures (none: anonymous). */
export function credentialsOf(u: UpstreamConfig, log: Logger): UpstreamCredentials {
  if (u.username !== undefined) {
    const fixed = { username: u.username, password: u.password ?? '' };
    return { get: async () => fixed, close: () => undefined };
  }
  if (u.credentialsfile === undefined) return { get: async () => undefined, close: () => undefined };
  return watchedFile(resolve(u.credentialsfile), new URL(u.remoteurl).host, log);
}

function watchedFile(file: string, host: string, log: Logger): UpstreamCredentials {
  let current: Promise<Credentials | undefined> | undefined;
  const read = (): Promise<Credentials | undefined> => readFile(file, 'utf8').then((text) => fromDockerConfig(JSON.parse(text) as unknown, host));
  let watcher: FSWatcher | undefined;
  try {
    // The directory, not the file: a file replaced by a rename is a new inode a file watch would miss.
    watcher = watch(dirname(file), { persistent: false }, (_event, name) => {
      if (name === null || name === basename(file)) current = undefined;
    });
    watcher.on('error', (err) => {
      log.warn('credentialsfile: watching stopped; the file is read at each use from now on', { file, err });
      watcher?.close();
      watcher = undefined;
    });
  } catch (err) {
    log.warn('credentialsfile: cannot be watched; it is read at each use', { file, err });
  }
  return {
    get() {
      if (watcher === undefined) return read();
      current ??= read();
      const loaded = current;
      // A failed read is not kept: the next use reads again.
      loaded.catch(() => {
        if (current === loaded) current = undefined;
      });
      return loaded;
    },
    close: () => watcher?.close(),
  };
}

/** `auths.<host>` of a docker config.json: `auth` (base64 user:password) or `username` and `password`. */
function fromDockerConfig(doc: unknown, host: string): Credentials | undefined {
  const auths = (doc as { auths?: Record<string, { auth?: unknown; username?: unknown; password?: unknown }> } | null)?.auths;
  const entry = auths?.[host] ?? auths?.[`https://${host}`] ?? auths?.[`http://${host}`];
  if (entry === undefined) return undefined;
  if (typeof entry.auth === 'string') {
    const text = Buffer.from(entry.auth, 'base64').toString('utf8');
    const at = text.indexOf(':');
    if (at > 0) return { username: text.slice(0, at), password: text.slice(at + 1) };
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string') return { username: entry.username, password: entry.password };
  return undefined;
}
