/**
 * Builds a driver from its options by an explicit map (no registry of plugins, no dynamic import), and
 * always returns it wrapped by `instrument()`, so no caller ever holds an unvalidated driver.
 */
import { createFilesystemDriver } from './filesystem.js';
import { instrument } from './instrument.js';
import type { DriverCallObserver } from './instrument.js';
import { createMemoryDriver } from './memory.js';
import { createS3Driver } from './s3.js';
import type { S3DriverOptions } from './s3.js';
import type { StorageDriver } from './driver.js';

/** Options of each driver kind, by kind. */
interface DriverOptionsByKind {
  filesystem: { readonly root: string };
  inmemory: Record<never, never>;
  s3: S3DriverOptions;
}

/** The kinds of driver Berth can build. */
export type DriverKind = keyof DriverOptionsByKind;

/** Options naming a driver kind and carrying that kind's settings. */
export type DriverOptions<K extends DriverKind = DriverKind> = {
  [P in K]: { readonly kind: P } & DriverOptionsByKind[P];
}[K];

const factories: { [K in DriverKind]: (o: DriverOptions<K>) => StorageDriver } = {
  filesystem: (o) => createFilesystemDriver({ root: o.root }),
  inmemory: () => createMemoryDriver(),
  s3: (o) => createS3Driver(o),
};

/**
 * The instrumented driver of the given kind. `observe`, when given, is told about every driver call
 * (see instrument.ts). Throws nothing itself; a filesystem root is created on the first write.
 */
export function createDriver<K extends DriverKind>(o: DriverOptions<K>, observe?: DriverCallObserver): StorageDriver {
  const make: (o: DriverOptions<K>) => StorageDriver = factories[o.kind];
  return instrument(make(o), observe);
}
