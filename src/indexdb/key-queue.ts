/**
 * One-at-a-time work per key. Refreshing an index entry is "read storage, then write the entry"; two
 * refreshes of one entry must not interleave, or an older read could be written last. Tasks of one key
 * run in order; a task asked for while an earlier task of the same key is still waiting to start is
 * not queued again: the caller shares the waiting one, which will read storage after the caller's
 * write anyway. So a burst of changes to one tag costs at most two refreshes.
 */
export interface KeyQueue {
  /** Runs `task` after every earlier task of `key` (or joins the one not yet started). Tasks must not reject. */
  run(key: string, task: () => Promise<void>): Promise<void>;
  /** Resolves once no task of any key is waiting or running. */
  idle(): Promise<void>;
  /** Keys with work waiting or running (for tests). */
  readonly size: number;
}

interface Slot {
  /** Settles when the last task of the key has finished. */
  tail: Promise<void>;
  /** The task asked for but not started yet, if any. */
  waiting: Promise<void> | undefined;
}

export function createKeyQueue(): KeyQueue {
  const slots = new Map<string, Slot>();
  return {
    run(key, task) {
      let slot = slots.get(key);
      if (slot?.waiting) return slot.waiting;
      if (!slot) {
        slot = { tail: Promise.resolve(), waiting: undefined };
        slots.set(key, slot);
      }
      const s = slot;
      const started = s.tail.then(() => {
        s.waiting = undefined;
        return task();
      });
      const tail = started.then(
        () => undefined,
        () => undefined,
      );
      s.waiting = started;
      s.tail = tail;
      void tail.then(() => {
        if (s.tail === tail) slots.delete(key);
      });
      return started;
    },
    async idle() {
      while (slots.size > 0) await Promise.all([...slots.values()].map((s) => s.tail));
    },
    get size() {
      return slots.size;
    },
  };
}
