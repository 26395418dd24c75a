import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidPathError } from './driver.js';
import { createDriver } from './factory.js';

describe('createDriver', () => {
  it('builds an instrumented in-memory driver', async () => {
    const d = createDriver({ kind: 'inmemory' });
    expect(d.name).toBe('inmemory');
    await expect(d.getContent('/../x')).rejects.toBeInstanceOf(InvalidPathError);
  });

  it('builds an instrumented filesystem driver on its root', async () => {
    const root = await mkdtemp(join(tmpdir(), 'berth-factory-'));
    try {
      const d = createDriver({ kind: 'filesystem', root });
      expect(d.name).toBe('filesystem');
      await d.putContent('/a/b', Buffer.from('x'));
      expect(await d.list('/a')).toEqual(['/a/b']);
      await expect(d.delete('/a//b')).rejects.toMatchObject({ code: 'INVALID_PATH', driver: 'filesystem' });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
