/**
 * How the filesystem driver deletes a directory: one rename out of the tree, and the removal of what
 * it held afterwards, in the background.
 *
 * A recursive removal costs a system call or more per entry: a repository of 10,000 tags holds some
 * 70,000 entries, whose removal took 4 s with `rm -rf` on a quiet machine and 23-41 s through Node's
 * `rm` on a loaded one, all of it inside the DELETE request. Renamed into `<root>/berth/discarded/`
 * (outside registry:2's tree, where no reader, listing or collector looks), the directory leaves the
 * tree at once and whole, as a reader sees it: it is there or it is not, never half removed.
 *
 * Removals run one at a time, in the order the directories came. A process that stops or crashes
 * before they are done leaves them in `discarded/`, and the next driver over the same root removes them
 * when it starts; several processes over one root may remove the same entries at once, which `rm`
 * with `force` allows. When the rename cannot be made (`discarded/` on another filesystem, a permission
 * problem), the directory is removed in place, as before.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Where discarded directories wait for their removal unless told otherwise (FilesystemDriverOptions.discarded), under the root. */
export const DISCARDED = '/berth/discarded';

export class Discarder {
  /** The removals not yet done, as one chain: each starts when the one before it settled. */
  private removals: Promise<void> = Promise.resolve();

  /** `dir`: the directory discarded directories are renamed into (absolute). */
  constructor(private readonly dir: string) {}

  /** Removes, in the background, what earlier processes left in the directory. */
  sweepLeftBehind(): void {
    this.after(async () => {
      const names = await readdir(this.dir).catch(() => []);
      for (const name of names) await removeQuietly(join(this.dir, name));
    });
  }

  /**
   * Takes the directory `full` out of the tree at once; its entries are removed in the background.
   * @throws what `rm` throws when the rename could not be made and the removal in place failed
   */
  async discard(full: string): Promise<void> {
    const to = join(this.dir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    try {
      // Made each time (one call when it is there): an operator may have removed it meanwhile.
      await mkdir(this.dir, { recursive: true });
      await rename(full, to);
    } catch (err) {
      if (isMissing(err)) throw err;
      await rm(full, { recursive: true, force: false });
      return;
    }
    this.after(() => removeQuietly(to));
  }

  /** Resolves once every removal asked for so far is done (for tests and an orderly stop). */
  idle(): Promise<void> {
    return this.removals;
  }

  private after(work: () => Promise<void>): void {
    this.removals = this.removals.then(work);
  }
}

/** Removes `path` and everything under it; a failure is left for the next process to retry. */
async function removeQuietly(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true }).catch(() => undefined);
}

function isMissing(err: unknown): boolean {
  return err instanceof Error && 'code' in err && err.code === 'ENOENT';
}
