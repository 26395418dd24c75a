/**
 * Blob content for benchmarks, generated as it is sent and never held whole in memory: a blob of
 * `size` bytes with seed `seed` is a run of 1 MiB blocks, each a 16-byte header (seed, block number)
 * followed by the same 1 MiB − 16 bytes of seeded pseudo-random data. Different seeds give different
 * digests, so every upload is new to the registry; the data does not compress, and producing it costs
 * no copying (the shared part is one immutable buffer written again and again).
 */
import { createHash } from 'node:crypto';

export const MiB = 1 << 20;
const BLOCK = MiB;
const HEADER = 16;

/** xorshift32 bytes: cheap, deterministic, incompressible enough for a registry that never compresses. */
function pseudoRandom(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i + 4 <= length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  for (let i = length - (length % 4); i < length; i++) out[i] = i & 0xff;
  return out;
}

let shared: Buffer | undefined;

/** The part of every block after its header (made once). */
function body(): Buffer {
  shared ??= pseudoRandom(BLOCK - HEADER, 0x5eed);
  return shared;
}

/**
 * The pieces of blob (`seed`, `size`) in order, from block `fromBlock` on: header, body, header, body, …
 * (the last block cut short).
 */
export function* blobPieces(seed: number, size: number, fromBlock = 0): Generator<Buffer> {
  const rest = body();
  for (let block = fromBlock, offset = fromBlock * BLOCK; offset < size; offset += BLOCK, block++) {
    const header = Buffer.alloc(HEADER);
    header.writeUInt32LE(seed >>> 0, 0);
    header.writeUInt32LE(block, 4);
    header.write('berthbch', 8, 'latin1');
    const length = Math.min(BLOCK, size - offset);
    if (length <= HEADER) {
      yield header.subarray(0, length);
      continue;
    }
    yield header;
    yield rest.subarray(0, length - HEADER);
  }
}

/** The pieces of bytes [start, end) of blob (`seed`, `size`); for chunked uploads. */
export function* blobRange(seed: number, size: number, start: number, end: number): Generator<Buffer> {
  const first = Math.floor(start / BLOCK);
  let at = first * BLOCK;
  for (const piece of blobPieces(seed, size, first)) {
    const next = at + piece.length;
    if (next > start && at < end) yield piece.subarray(Math.max(0, start - at), Math.min(piece.length, end - at));
    at = next;
    if (at >= end) return;
  }
}

const digests = new Map<string, string>();

/** sha256 of blob (`seed`, `size`), hashed from the generator (cached per seed and size). */
export function blobDigest(seed: number, size: number): string {
  const key = `${seed}/${size}`;
  const known = digests.get(key);
  if (known !== undefined) return known;
  const hash = createHash('sha256');
  for (const piece of blobPieces(seed, size)) hash.update(piece);
  const d = `sha256:${hash.digest('hex')}`;
  digests.set(key, d);
  return d;
}
