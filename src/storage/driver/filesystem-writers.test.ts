/**
 * The writers' records (filesystem-writers.ts), with real processes: one that writes and exits
 * cleanly leaves no record; one that exits in the middle of a multi-step write, or is killed while a
 * write is in flight, leaves one, judged `gone`; this process's own is `running`.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFilesystemDriver } from './filesystem.js';

const DRIVER = resolve(import.meta.dirname, 'filesystem.ts');

/** Runs `body` (a module's text, with `driver` over `root` in scope) in a new Node process; answers its exit. */
async function child(dir: string, root: string, body: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const script = join(dir, `child-${Math.random().toString(16).slice(2)}.mts`);
  await writeFile(script, `import { createFilesystemDriver } from ${JSON.stringify(DRIVER)};\nconst driver = createFilesystemDriver({ root: ${JSON.stringify(root)} });\n${body}\n`);
  const p = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'inherit', 'inherit'] });
  const [code, signal] = (await once(p, 'exit')) as [number | null, NodeJS.Signals | null];
  return { code, signal };
}

describe('filesystem driver: writers\' records', () => {
  let dir: string;
  let root: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-writers-'));
    root = join(dir, 'root');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const records = async (): Promise<string[]> => readdir(join(root, 'berth', 'writers')).catch(() => []);

  it('a process that writes and exits cleanly leaves no record', async () => {
    expect(await child(dir, root, `await driver.putContent('/a/link', Buffer.from('x'));`)).toEqual({ code: 0, signal: null });
    expect(await records()).toEqual([]);
  });

  it('a process that exits in the middle of a multi-step write leaves its record, judged gone', async () => {
    const body = `
      await driver.putContent('/a/link', Buffer.from('x'));
      void driver.during(() => new Promise(() => undefined)); // a tag written halfway: never finished
      setTimeout(() => process.exit(0), 10);`;
    expect(await child(dir, root, body)).toEqual({ code: 0, signal: null });
    expect(await records()).toHaveLength(1);
    const driver = createFilesystemDriver({ root });
    expect(await driver.writers?.()).toMatchObject([{ state: 'gone', dirty: false }]);
  });

  it('a process killed while a write is in flight leaves its record, judged gone; forgetWriter removes it', async () => {
    const body = `
      void driver.during(async () => {
        await driver.putContent('/a/link', Buffer.from('x'));
        process.kill(process.pid, 'SIGKILL');
        await new Promise(() => undefined);
      });`;
    expect(await child(dir, root, body)).toEqual({ code: null, signal: 'SIGKILL' });
    const driver = createFilesystemDriver({ root });
    const [gone] = (await driver.writers?.()) ?? [];
    expect(gone).toMatchObject({ state: 'gone', dirty: false });
    await driver.forgetWriter?.(gone!.name);
    expect(await records()).toEqual([]);
  });

  it('this process\'s own record is running; one from another machine is unknown', async () => {
    const driver = createFilesystemDriver({ root });
    await driver.putContent('/a/link', Buffer.from('x'));
    expect(await driver.writers?.()).toMatchObject([{ state: 'running', dirty: false }]);
    await writeFile(join(root, 'berth', 'writers', 'elsewhere.json'), JSON.stringify({ host: 'another-machine', boot: 'b', pid: 1, start: '1' }));
    const states = ((await driver.writers?.()) ?? []).map((w) => `${w.name.startsWith('elsewhere') ? 'elsewhere' : 'self'}: ${w.state}`).sort();
    expect(states).toEqual(['elsewhere: unknown', 'self: running']);
  });
});
