/**
 * The `mixed` family's floor: lib/limit-receiver.ts started with a registry's recorded answer to a
 * manifest GET, so that one plain Node process answers the same bytes and headers to wrk while it
 * receives, hashes, writes and fsyncs the same uploads (no registry logic, no access log).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { send } from './client.js';
import { type Server, freePort, startServer } from './proc.js';
import { REPO_ROOT } from './servers.js';

/** Berth's answer to the manifest GET (headers Node sets on every answer left out), written to `file` for the floor. */
export async function recordManifestAnswer(url: string, accept: string, file: string): Promise<void> {
  const a = await send(url, 'GET', { Accept: accept }, undefined);
  if (a.status !== 200) throw new Error(`manifest GET for the floor: ${a.status} ${a.body.slice(0, 200)}`);
  const perConnection = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);
  const headers = Object.fromEntries(Object.entries(a.headers).filter(([k, v]) => !perConnection.has(k) && typeof v === 'string'));
  await writeFile(file, JSON.stringify({ headers, body: a.body }));
}

/**
 * Starts lib/limit-receiver.ts receiving uploads into `dir` (made here) and, given `answer`, answering
 * the recorded manifest; waits until it listens.
 */
export async function startFloor(dir: string, answer?: string): Promise<Server> {
  const port = await freePort();
  await mkdir(dir);
  const args = ['--import', 'tsx', join(REPO_ROOT, 'bench', 'lib', 'limit-receiver.ts'), dir, String(port), ...(answer === undefined ? [] : [answer])];
  const floor = startServer(process.execPath, args, `http://127.0.0.1:${port}`, REPO_ROOT);
  try {
    await floor.waitFor(/listening/, 60_000);
  } catch (err) {
    await floor.stop();
    throw err;
  }
  return floor;
}
