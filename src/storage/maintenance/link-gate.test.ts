import { describe, expect, it } from 'vitest';
import type { Digest } from '../digest.js';
import { createLinkGate } from './link-gate.js';

const A = `sha256:${'a'.repeat(64)}` as Digest;
const B = `sha256:${'b'.repeat(64)}` as Digest;

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('link gate', () => {
  it('a sweep that starts while a link runs waits for it, and then sees the link time', async () => {
    let clock = 1000;
    const gate = createLinkGate(() => clock);
    const linkGo = deferred();
    const order: string[] = [];
    const linking = gate.link([A], async () => {
      order.push('link start');
      await linkGo.promise;
      order.push('link end');
    });
    clock = 2000;
    const sweeping = gate.sweep(A, async (last) => {
      order.push(`sweep sees ${String(last)}`);
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual(['link start']);
    linkGo.resolve();
    await Promise.all([linking, sweeping]);
    expect(order).toEqual(['link start', 'link end', 'sweep sees 2000']);
  });

  it('a link that starts while a sweep runs waits for the sweep to finish', async () => {
    const gate = createLinkGate(() => 5);
    const sweepGo = deferred();
    const order: string[] = [];
    const sweeping = gate.sweep(A, async () => {
      order.push('sweep start');
      await sweepGo.promise;
      order.push('sweep end');
    });
    const linking = gate.link([A, B], async () => {
      order.push('link');
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual(['sweep start']);
    sweepGo.resolve();
    await Promise.all([sweeping, linking]);
    expect(order).toEqual(['sweep start', 'sweep end', 'link']);
  });

  it('links on the same digest run together; other digests are never blocked', async () => {
    const gate = createLinkGate();
    const hold = deferred();
    let inside = 0;
    let most = 0;
    const run = (): Promise<void> =>
      gate.link([A], async () => {
        inside += 1;
        most = Math.max(most, inside);
        await hold.promise;
        inside -= 1;
      });
    const both = [run(), run()];
    const other = gate.sweep(B, async () => 'swept');
    expect(await other).toBe('swept');
    hold.resolve();
    await Promise.all(both);
    expect(most).toBe(2);
  });

  it('a waiting sweep is not starved by later links, and a failed operation releases its lock', async () => {
    const gate = createLinkGate();
    const first = deferred();
    const order: string[] = [];
    const l1 = gate.link([A], async () => first.promise);
    const s = gate.sweep(A, async () => {
      order.push('sweep');
    });
    const l2 = gate.link([A], async () => {
      order.push('late link');
    });
    first.resolve();
    await Promise.all([l1, s, l2]);
    expect(order).toEqual(['sweep', 'late link']);
    await expect(gate.link([A], async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await gate.sweep(A, async () => 'free')).toBe('free');
  });

  it('touch records a read; forgetBefore drops old times', async () => {
    let clock = 100;
    const gate = createLinkGate(() => clock);
    gate.touch(A);
    clock = 300;
    await gate.link([B], async () => undefined);
    gate.forgetBefore(200);
    expect(await gate.sweep(A, async (last) => last)).toBeUndefined();
    expect(await gate.sweep(B, async (last) => last)).toBe(300);
  });
});
