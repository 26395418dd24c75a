/**
 * Bytes per request from the connection's own counters: each request is charged what its connection
 * read and wrote since the previous request on it ended (headers included), so small requests read in
 * one go are counted too.
 */
import type { Socket } from 'node:net';

/** Bytes one request read and wrote. */
export interface RequestBytes {
  readonly bytesIn: number;
  readonly bytesOut: number;
}

/** A counter with its own memory of each connection; call it once per request, when the response is over. */
export function connectionBytes(): (socket: Socket) => RequestBytes {
  const counted = new WeakMap<Socket, { read: number; written: number }>();
  return (socket) => {
    const previous = counted.get(socket) ?? { read: 0, written: 0 };
    const now = { read: socket.bytesRead, written: socket.bytesWritten };
    counted.set(socket, now);
    return { bytesIn: now.read - previous.read, bytesOut: now.written - previous.written };
  };
}
