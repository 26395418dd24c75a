/**
 * A SHA-256 whose running state can be saved and taken up again by another process: what a chunked
 * upload keeps at `_uploads/<uuid>/hashstates/sha256/<offset>` after each PATCH, so the next PATCH or
 * the commit, on any replica or after a restart, goes on hashing instead of reading the data back.
 *
 * The saved state has the layout of Go's crypto/sha256 MarshalBinary, which registry:2 writes at the
 * same path, so an upload begun on registry:2 resumes on Berth and back:
 *
 *   "sha\x03" | the eight state words, big-endian | the pending bytes of the current 64-byte block,
 *   zero-padded to 64 | the message length in bytes, big-endian uint64          (108 bytes in all)
 *
 * Node's crypto cannot export a hash's state, so this runs hash-wasm's SHA-256 (WebAssembly, several
 * times slower than Node's native hash on machines with SHA instructions): uploads use it only where
 * a state is saved, chunked uploads, and Node's hash for everything else.
 */
import { createSHA256, type IHasher } from 'hash-wasm';
import { type Digest, makeDigest } from '../digest.js';

/** Go's SHA-256 state magic ("sha" and version 3; SHA-224 uses 2). */
const GO_MAGIC = Buffer.from('sha\x03', 'latin1');
const BLOCK = 64;
const WORDS = 8;
/** The size of a Go-format state: magic, words, one block, length. */
export const GO_STATE_BYTES = GO_MAGIC.length + WORDS * 4 + BLOCK + 8;
const GO_WORDS_AT = GO_MAGIC.length;
const GO_BLOCK_AT = GO_WORDS_AT + WORDS * 4;
const GO_LENGTH_AT = GO_BLOCK_AT + BLOCK;

/**
 * hash-wasm's saved state (pinned to hash-wasm 4.13.0, checked by `checkLayout`): a 4-byte tag of
 * its WebAssembly build, then its C context in WebAssembly's little-endian memory: the pending block
 * (64 bytes), the message length (uint64), the eight state words (uint32 each), the digest length.
 */
const WASM_BLOCK_AT = 4;
const WASM_LENGTH_AT = WASM_BLOCK_AT + BLOCK;
const WASM_WORDS_AT = WASM_LENGTH_AT + 8;
/** SHA-256's initial state words (FIPS 180-4 §5.3.3), to recognise the layout in a fresh state. */
const INITIAL_WORDS = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/** A running SHA-256 that counts its bytes and can save its state in Go's format. */
export class ResumableSha256 {
  readonly algorithm = 'sha256' as const;

  private constructor(
    private readonly hasher: IHasher,
    private bytes: number,
  ) {}

  /** A new hash over no bytes. */
  static async create(): Promise<ResumableSha256> {
    return new ResumableSha256(await freshHasher(), 0);
  }

  /**
   * The hash a Go-format `state` describes, when it is one and covers exactly `size` bytes; undefined
   * otherwise (a torn, foreign or stale state is not trusted: the caller reads the data instead).
   */
  static async resume(state: Uint8Array, size: number): Promise<ResumableSha256 | undefined> {
    const go = Buffer.from(state.buffer, state.byteOffset, state.byteLength);
    if (go.length !== GO_STATE_BYTES || !go.subarray(0, GO_MAGIC.length).equals(GO_MAGIC)) return undefined;
    const length = go.readBigUInt64BE(GO_LENGTH_AT);
    if (length !== BigInt(size)) return undefined;
    const hasher = await freshHasher();
    const wasm = hasher.save(); // the build tag and the fields this copy does not set come from here
    const view = new DataView(wasm.buffer, wasm.byteOffset, wasm.byteLength);
    for (let i = 0; i < WORDS; i++) view.setUint32(WASM_WORDS_AT + 4 * i, go.readUInt32BE(GO_WORDS_AT + 4 * i), true);
    view.setBigUint64(WASM_LENGTH_AT, length, true);
    wasm.set(go.subarray(GO_BLOCK_AT, GO_BLOCK_AT + (size % BLOCK)), WASM_BLOCK_AT);
    hasher.load(wasm);
    return new ResumableSha256(hasher, size);
  }

  /** Bytes hashed so far. */
  get size(): number {
    return this.bytes;
  }

  update(chunk: Uint8Array): void {
    this.hasher.update(chunk);
    this.bytes += chunk.length;
  }

  /** The state in Go's MarshalBinary format (108 bytes), as registry:2 stores it. */
  state(): Buffer {
    const wasm = this.hasher.save();
    const view = new DataView(wasm.buffer, wasm.byteOffset, wasm.byteLength);
    const go = Buffer.alloc(GO_STATE_BYTES);
    GO_MAGIC.copy(go, 0);
    for (let i = 0; i < WORDS; i++) go.writeUInt32BE(view.getUint32(WASM_WORDS_AT + 4 * i, true), GO_WORDS_AT + 4 * i);
    go.set(wasm.subarray(WASM_BLOCK_AT, WASM_BLOCK_AT + (this.bytes % BLOCK)), GO_BLOCK_AT);
    go.writeBigUInt64BE(BigInt(this.bytes), GO_LENGTH_AT);
    return go;
  }

  /** The digest so far, leaving this hash usable. */
  digest(): Digest {
    const saved = this.hasher.save();
    const hex = this.hasher.digest('hex');
    this.hasher.load(saved);
    return makeDigest(this.algorithm, hex);
  }
}

let layoutChecked = false;

async function freshHasher(): Promise<IHasher> {
  const hasher = await createSHA256();
  hasher.init();
  if (!layoutChecked) {
    checkLayout(hasher.save());
    layoutChecked = true;
  }
  return hasher;
}

/**
 * Fails loudly when hash-wasm's state no longer has the layout this module converts (a different
 * version of the package): a fresh state holds the initial words where they are expected.
 */
function checkLayout(wasm: Uint8Array): void {
  const view = new DataView(wasm.buffer, wasm.byteOffset, wasm.byteLength);
  const ok =
    wasm.length >= WASM_WORDS_AT + WORDS * 4 &&
    view.getBigUint64(WASM_LENGTH_AT, true) === 0n &&
    INITIAL_WORDS.every((w, i) => view.getUint32(WASM_WORDS_AT + 4 * i, true) === w);
  if (!ok) throw new Error('hash-wasm SHA-256 state layout is not the one resumable-sha256.ts converts (package version changed?)');
}
