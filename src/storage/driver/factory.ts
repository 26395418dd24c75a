/**
 * Builds a driver from its options by an explicit map (no registry of plugins), and always returns it
 * wrapped by `instrument()`, so no caller ever holds an unvalidated driver.
 *
 * The local kinds (filesystem, in-memory) are built at once. The S3 driver is loaded only when asked
 * for (`openDriver`): it brings the AWS SDK, some 17 MiB of resident memory that a filesystem
 * registry would otherwise carry for nothing.
 */
import { createFilesystemDriver } from './filesystem.js';
import { instrument } from './instrument.js';
import type { DriverCallObserver } from './instrument.js';
import { createMemoryDriver } from './memory.js';
import type { S3DriverOptions } from './s3.js';
import type { StorageDriver } from './driver.js';

/** Options of each driver kind, by kind. */
interface DriverOptionsByKind {
  /** `blocking` (offline commands only) and `blockingStatsWhileWriting` (workers): see FilesystemDriverOptions. */
  filesystem: { readonly root: string; readonly blocking?: boolean; readonly blockingStatsWhileWriting?: boolean };
  inmemory: Record<never, never>;
  s3: S3DriverOptions;
}

/** The kinds of driver Berth can build. */
export type DriverKind = keyof DriverOptionsByKind;

/** The kinds built without loading anything. */
export type LocalDriverKind = Exclude<DriverKind, 's3'>;

/** Options naming a driver kind and carrying that kind's settings. */
export type DriverOptions<K extends DriverKind = DriverKind> = {
  [P in K]: { readonly kind: P } & DriverOptionsByKind[P];
}[K];

const localFactories: { [K in LocalDriverKind]: (o: DriverOptions<K>) => StorageDriver } = {
  filesystem: (o) => createFilesystemDriver({
    root: o.root, ...(o.blocking !== undefined && { blocking: o.blocking }),
    ...(o.blockingStatsWhileWriting !== undefined && { blockingStatsWhileWriting: o.blockingStatsWhileWriting }),
  }),
  inmemory: () => createMemoryDriver(),
};

/**
 * The instrumented driver of a local kind. `observe`, when given, is told about every driver call
 * (see instrument.ts). Throws nothing itself; a filesystem root is created on the first write.
 */
export function createDriver<K extends LocalDriverKind>(o: DriverOptions<K>, observe?: DriverCallObserver): StorageDriver {
  const make: (o: DriverOptions<K>) => StorageDriver = localFactories[o.kind];
  return instrument(make(o), observe);
}

/** The instrumented driver of any kind, loading the S3 driver's code first when `o` asks for it. */
export async function openDriver(o: DriverOptions, observe?: DriverCallObserver): Promise<StorageDriver> {
  if (o.kind !== 's3') return createDriver(o, observe);
  const { createS3Driver } = await import('./s3.js');
  return instrument(createS3Driver(o), observe);
}
