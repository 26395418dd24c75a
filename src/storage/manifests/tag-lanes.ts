/**
 * One lane per tag: the writes and deletes of one tag of one repository run one at a time in this
 * process, in the order they came (a PUT by tag, a DELETE by tag, retention's conditional delete).
 * So of two first pushes of an immutable tag the second finds the tag set and is refused, and a
 * conditional delete (`deleteTagIf`) reads the tag and removes it with no push of that tag in between.
 * Tags of different names never wait for each other.
 *
 * Every registry over one storage in a process must share one (serve hands storage's to the
 * retention and pull-through cache registries, as it does the link gate). Replicas share the order
 * through Redis (coordination/redis-tag-lanes.ts, which takes a per-tag lock inside this lane).
 */
export interface TagLanes {
  /** Runs `fn` once every earlier call for the same repository and tag has settled. */
  run<T>(repo: string, tag: string, fn: () => Promise<T>): Promise<T>;
}

export function createTagLanes(): TagLanes {
  const tails = new Map<string, Promise<unknown>>();
  return {
    async run(repo, tag, fn) {
      const key = `${repo}:${tag}`;
      const before = tails.get(key);
      // An idle lane starts `fn` at once, in the caller's turn (the link gate relies on a PUT taking
      // its place in the gate before the caller's next step).
      const mine = before === undefined ? fn() : before.catch(() => undefined).then(fn);
      tails.set(key, mine);
      try {
        return await mine;
      } finally {
        if (tails.get(key) === mine) tails.delete(key);
      }
    },
  };
}
