/**
 * Types and helpers shared by the driver suite's case files (cases-*.ts). Test-only code:
 * tsconfig.build.json leaves every `suite/` folder (test support inside src/) out of the build.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type AddressInfo, createServer } from 'node:net';
import { Readable } from 'node:stream';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect } from 'vitest';
import { DriverError } from '../driver.js';
import type { DriverCapabilities, DriverErrorCode, FileInfo, FileWriter, StorageDriver } from '../driver.js';

/** What a case gets: the instrumented driver and a fresh prefix that only this test uses. */
export interface CaseContext {
  readonly d: StorageDriver;
  /** A directory path unique to this test, e.g. `/t-3fa9c1`; the harness deletes it afterwards. */
  readonly p: string;
}

/** One test of the shared suite. `title` is also the key of `opts.skip`. */
export interface DriverCase {
  readonly title: string;
  readonly body: (c: CaseContext) => Promise<void>;
  readonly timeout?: number;
  /** When set, the test is skipped and this reason printed. */
  readonly skipReason?: string | undefined;
  /** An optional capability the case tests: on a driver without it, the case is skipped with that reason printed. */
  readonly requires?: keyof DriverCapabilities;
}

/** `n` random bytes. */
export function random(n: number): Buffer {
  return randomBytes(n);
}

/** The UTF-8 bytes of `s`. */
export function bytes(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Reads a stream to its end. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks);
}

/** Everything `walk` yields, or its rejection. */
export async function drain(it: AsyncIterable<FileInfo>): Promise<FileInfo[]> {
  const out: FileInfo[] = [];
  for await (const info of it) out.push(info);
  return out;
}

/** Writes `chunks` through the writer and ends it (the way the upload code does, with pipeline). */
export async function writeAndEnd(w: FileWriter, ...chunks: Buffer[]): Promise<void> {
  await pipeline(Readable.from(chunks, { objectMode: false }), w);
}

/** Writes one chunk and waits until the writer has taken it (without ending the writer). */
export function writeOne(w: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    w.write(chunk, (err) => (err ? reject(err) : resolve()));
  });
}

/** Waits until `w` has emitted 'close' (or has been closed already). */
export function closed(w: Writable): Promise<void> {
  return new Promise((resolve) => {
    w.once('close', () => resolve());
    // `closed` turns true before the 'close' event, which may then still be due this tick.
    if (w.closed) setImmediate(resolve);
  });
}

/**
 * Asserts that `run` rejects with a DriverError of `code` from `driver`, whose other fields match
 * `fields` (e.g. `{ path }`). `label` names the call in the failure message.
 */
export async function expectDriverError(
  run: Promise<unknown>,
  code: DriverErrorCode,
  driver: string,
  fields: Record<string, unknown> = {},
  label = 'the call',
): Promise<void> {
  const err = await run.then(
    () => new Error(`${label} resolved`),
    (e: unknown) => e,
  );
  expect(err, `${label}: expected a ${code} DriverError`).toBeInstanceOf(DriverError);
  expect(err, label).toMatchObject({ code, driver, ...fields });
}

/** The same as expectDriverError, for the first step of a walk. */
export function expectWalkError(
  d: StorageDriver,
  path: string,
  code: DriverErrorCode,
  fields: Record<string, unknown> = {},
): Promise<void> {
  return expectDriverError(drain(d.walk(path)), code, d.name, fields);
}

/** Sorted copy, for comparing listings that come in no particular order. */
export function sorted(paths: readonly string[]): string[] {
  return [...paths].sort();
}

/** True if either of the environment switches that enable the slow group is set. */
export function slowTestsEnabled(): boolean {
  return process.env['CI'] === 'true' || process.env['BERTH_SLOW_TESTS'] === '1';
}

/** A loopback port nobody listened on a moment ago (for "the server cannot be reached" cases). */
export async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
