/**
 * An upload body written into a storage writer with no stream in between (issue #19): every chunk the
 * body emits is counted and paced by the caller's `BodyPacer`, hashed, and handed to the writer, all in
 * the one 'data' listener. Backpressure is explicit: the body is paused while the writer holds more than
 * its high-water mark (until 'drain') and while the pacer holds a chunk.
 *
 * Before this, each 64 KiB chunk went through two Transform streams on the way (the HTTP layer's
 * stand-in that counted and paced, then a hashing stage), each a write, a transform, a push and a
 * 'data' event of bookkeeping on the main thread, which the manifest GETs served at the same time share.
 *
 * Unlike `pipeline`, the body is never destroyed: when the writer fails, the body is left paused with
 * its unread bytes in it, so that the HTTP layer can read and drop them and still answer on the same
 * connection. The writer is not ended on failure (the caller destroys or cancels it).
 */
import { type Readable, type Writable, finished } from 'node:stream';
import type { RunningHash } from '../digest.js';
import { abortError } from '../driver/driver.js';

/**
 * What the caller does with each chunk of a body before it is taken (the HTTP layer counts the bytes
 * and lets chunks give way while the event loop lags). Both are called on the main thread, once per chunk.
 */
export interface BodyPacer {
  /** Counts `bytes` about to be taken; false when the chunk must wait, for `later`. */
  admit(bytes: number): boolean;
  /** Calls `go` once the chunk refused by `admit` may be taken. */
  later(go: () => void): void;
}

/** Options of `feed`. */
export interface FeedOptions {
  /** Fed every chunk before the writer gets it. */
  readonly hash?: RunningHash | undefined;
  readonly pacer?: BodyPacer | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Writes all of `body` into `writer` and ends it. Resolves once the writer has finished (end()'s
 * callback: for a driver's writer, the bytes are durable). Rejects with the first error of either
 * stream, the body's premature close (a client that went away), or an AbortError when `signal` fires;
 * the body is then left as it is (paused, not destroyed) and the writer neither ended nor destroyed.
 */
export function feed(body: Readable, writer: Writable, o: FeedOptions = {}): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const { hash, pacer, signal } = o;
    let settled = false;
    let waitingForDrain = false;
    let bodyEnded = false;
    /** Chunks the pacer holds back (the first refused by `admit`, any that came after it), in order. */
    let held: Buffer[] = [];
    let stopWatchingBody = (): void => undefined;

    const cleanup = (): void => {
      settled = true;
      body.removeListener('data', onData);
      writer.removeListener('drain', onDrain);
      signal?.removeEventListener('abort', onAbort);
      stopWatchingBody();
    };
    // Kept on the writer for its life (fail does nothing once settled): an aborted filesystem writer
    // emits its AbortError a tick after the signal fires, and an 'error' with no listener would throw.
    function fail(err: Error): void {
      if (settled) return;
      body.pause(); // what is left stays in the body, for the caller to read in its own time
      cleanup();
      reject(err);
    }
    function onAbort(): void {
      fail(abortError(signal));
    }
    const resumeIfFree = (): void => {
      if (!settled && !waitingForDrain && held.length === 0) body.resume();
    };
    function onDrain(): void {
      waitingForDrain = false;
      resumeIfFree();
    }
    const take = (chunk: Buffer): void => {
      hash?.update(chunk);
      if (!writer.write(chunk) && !waitingForDrain) {
        waitingForDrain = true;
        body.pause();
        writer.once('drain', onDrain);
      }
    };
    const endWriter = (): void => {
      if (settled || held.length > 0 || !bodyEnded) return;
      writer.end((err?: Error | null) => {
        if (err) return fail(err);
        if (settled) return;
        cleanup();
        resolve();
      });
    };
    const release = (): void => {
      const go = held;
      held = [];
      if (settled) return;
      for (const chunk of go) take(chunk);
      if (bodyEnded) endWriter();
      else resumeIfFree();
    };
    function onData(chunk: Buffer): void {
      if (settled) return;
      const admitted = pacer === undefined || pacer.admit(chunk.length);
      if (admitted && held.length === 0) return take(chunk);
      held.push(chunk); // a chunk after a held one waits behind it, whatever the pacer says now
      if (held.length > 1 || pacer === undefined) return;
      body.pause();
      pacer.later(release);
    }

    if (signal?.aborted === true) return reject(abortError(signal));
    signal?.addEventListener('abort', onAbort, { once: true });
    writer.on('error', fail);
    // 'end', 'error', and a 'close' before 'end' (a premature close), also when already past them.
    stopWatchingBody = finished(body, { writable: false }, (err) => {
      if (err) return fail(err);
      bodyEnded = true;
      endWriter();
    });
    body.on('data', onData);
  });
}
