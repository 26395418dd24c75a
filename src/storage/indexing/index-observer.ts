/**
 * Where index changes come from: a driver wrapper that, after every write under the layout settles
 * (putContent, move, delete, a writer's commit or cancel), tells the index which tag, revision,
 * repository or blob the path belongs to, and waits for the index to take it in.
 *
 * Reporting at the driver, rather than from each storage operation, makes the report complete by
 * construction: a manifest PUT, a tag or manifest DELETE, an upload commit, a mount, a blob DELETE,
 * and the collector's and the integrity check's deletions through `Inventory` all write through this
 * driver, so none of them can forget to tell the index. A failed or aborted write is reported too
 * (a recursive delete can fail half-way), except one that found nothing at its path; the index
 * re-reads the item, so an extra report costs a read and can never make it wrong. Reads pass through.
 *
 * Paths are read back by the layout's own parser (paths.ts parsePath):
 *   repositories/<name>/_manifests/tags/<tag>[/…]             → tag (and its repository)
 *   repositories/<name>/_manifests/revisions/<alg>/<hex>[/…]  → revision (and its repository)
 *   repositories/<name>/_layers/<alg>/<hex>[/…]               → layer (and its repository)
 *   repositories/<name>/_layers[/<alg>]                       → contents (every layer link of it)
 *   repositories/<name>/_manifests[/tags|/revisions[/<alg>]]  → contents (every tag and revision of it)
 *   repositories/<name>/_uploads/…                            → nothing (uploads are not indexed)
 *   blobs/<alg>/<hex2>/<hex>[/…]                              → blob
 *   a repository directory, a folder of them, or above          → everything (only a rebuild can tell)
 *   outside the layout (Berth's own `/berth/…`)               → nothing
 */
import { type CallOptions, type FileWriter, type StorageDriver, isDriverError } from '../driver/driver.js';
import type { GuardedIndex, IndexChange } from './index-port.js';
import { parsePath } from '../paths.js';

/** `driver`, reporting each settled write under the layout to `index`. */
export function observeDriver(driver: StorageDriver, index: GuardedIndex): StorageDriver {
  const report = async (...changed: string[]): Promise<void> => {
    await Promise.all(changed.flatMap(changesOf).map((change) => index.onChange(change)));
  };
  const after = async <T>(op: () => Promise<T>, ...changed: string[]): Promise<T> => {
    try {
      const result = await op();
      await report(...changed);
      return result;
    } catch (err) {
      // Nothing was there to change (a delete or move of a missing path); any other failure may have
      // changed something before it failed.
      if (!isDriverError(err, 'PATH_NOT_FOUND')) await report(...changed);
      throw err;
    }
  };
  const create = driver.createContent?.bind(driver);
  return {
    name: driver.name,
    ...(driver.capabilities && { capabilities: driver.capabilities }),
    getContent: (p, o) => driver.getContent(p, o),
    putContent: (p, data, o) => after(() => driver.putContent(p, data, o), p),
    ...(create && { createContent: (p: string, data: Uint8Array, o?: CallOptions) => after(() => create(p, data, o), p) }),
    reader: (p, offset, o) => driver.reader(p, offset, o),
    writer: async (p, o) => {
      const writer = await driver.writer(p, o);
      return changesOf(p).length === 0 ? writer : observeWriter(writer, () => report(p));
    },
    stat: (p, o) => driver.stat(p, o),
    list: (p, o) => driver.list(p, o),
    move: (from, to, o) => after(() => driver.move(from, to, o), from, to),
    delete: (p, o) => after(() => driver.delete(p, o), p),
    walk: (p, o?: CallOptions) => driver.walk(p, o),
    ...(driver.redirectUrl && { redirectUrl: driver.redirectUrl.bind(driver) }),
    ...(driver.leftovers && { leftovers: driver.leftovers.bind(driver) }),
    ...(driver.tree && { tree: driver.tree.bind(driver) }),
    ...(driver.during && { during: driver.during.bind(driver) }),
    ...(driver.writers && { writers: driver.writers.bind(driver) }),
    ...(driver.forgetWriter && { forgetWriter: driver.forgetWriter.bind(driver) }),
  };
}

/** The writer, reporting once its content became visible (commit) or was removed (cancel). */
function observeWriter(writer: FileWriter, report: () => Promise<void>): FileWriter {
  const commit = writer.commit.bind(writer);
  const cancel = writer.cancel.bind(writer);
  return Object.assign(writer, {
    async commit() {
      try {
        await commit();
      } finally {
        await report();
      }
    },
    async cancel() {
      try {
        await cancel();
      } finally {
        await report();
      }
    },
  });
}

/** What a write to `path` may have changed. */
export function changesOf(path: string): IndexChange[] {
  const at = parsePath(path);
  switch (at.kind) {
    case 'ancestor':
    case 'repositories': // a repository directory itself (and any repository nested in it), or a folder of repositories
      return [{ kind: 'everything' }];
    case 'manifests': // the `_manifests` folder (a repository delete): every tag and revision of the repository
      return [{ kind: 'contents', repo: at.repo }];
    case 'layer': {
      // The whole `_layers` folder (a repository delete) takes every link of it.
      if (!at.named) return [{ kind: 'contents', repo: at.repo }];
      const self: IndexChange = { kind: 'repository', repo: at.repo };
      return at.digest === undefined ? [self] : [{ kind: 'layer', repo: at.repo, digest: at.digest }, self];
    }
    case 'tag':
      return at.tag === undefined ? [{ kind: 'contents', repo: at.repo }] : [{ kind: 'tag', repo: at.repo, tag: at.tag }, { kind: 'repository', repo: at.repo }];
    case 'revision': {
      if (!at.named) return [{ kind: 'contents', repo: at.repo }];
      const self: IndexChange = { kind: 'repository', repo: at.repo };
      return at.digest === undefined ? [self] : [{ kind: 'revision', repo: at.repo, digest: at.digest }, self];
    }
    case 'blob':
      return at.digest === undefined ? [] : [{ kind: 'blob', digest: at.digest }];
    case 'upload': // uploads are not indexed
    case 'other': // a folder registry:2 does not know: it decides nothing
    case 'outside':
      return [];
  }
}
