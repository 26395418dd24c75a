/**
 * The structured logger, on pino: one line per entry on stderr, as text (`time level msg key=value`,
 * like registry:2's logrus text format) or JSON. Entries below the configured level are dropped.
 *
 * A server's lines go through pino's asynchronous destination (sonic-boom): a request's access line is
 * queued and written by a background write, never a synchronous write(2) on the request path; what is
 * still queued when the process exits is flushed then (pino's exit hook). Commands that print their
 * own output beside the log (the offline tools) log synchronously, so the two stay in order.
 *
 * The text format is made from pino's JSON line (parsed again and laid out as `key=value`), so both
 * formats carry the same fields: `time` (ISO 8601), `level` (its name), `msg`, the logger's fields
 * (`log.fields`, then a child's), then the entry's own. An Error among the fields is written as its
 * message and stack.
 */
import { pino, type DestinationStream, type Logger as Pino, type LoggerOptions as PinoOptions } from 'pino';

export type Level = 'error' | 'warn' | 'info' | 'debug';
export type Fields = Record<string, unknown>;

export interface Logger {
  error(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  /** A logger that adds `fields` to every entry. */
  child(fields: Fields): Logger;
}

export interface LoggerOptions {
  readonly level: Level;
  readonly format: 'text' | 'json';
  /** Receives each line (newline included), synchronously; default: stderr. */
  readonly write?: (line: string) => void;
  /**
   * Without `write`: queue lines and write them to stderr in the background (a server), rather than
   * one synchronous write per line (the default, for commands whose other output must stay in order).
   */
  readonly async?: boolean;
}

/** A logger with `base` on every entry. */
export function createLogger(opts: LoggerOptions, base: Fields = {}): Logger {
  const out: DestinationStream = opts.write ? { write: opts.write } : pino.destination({ dest: 2, sync: opts.async !== true });
  const text = opts.format === 'text';
  const options: PinoOptions = {
    level: opts.level,
    base: { ...base },
    messageKey: 'msg',
    timestamp: isoTime,
    formatters: { level: (label) => ({ level: label }), log: (entry) => plainErrors(entry, text) },
    serializers: { err: (v: unknown) => v }, // plainErrors has already laid Errors out
  };
  return wrap(pino(options, text ? textDestination(out) : out));
}

function wrap(p: Pino): Logger {
  return {
    error: (m, f) => p.error(f ?? {}, m),
    warn: (m, f) => p.warn(f ?? {}, m),
    info: (m, f) => p.info(f ?? {}, m),
    debug: (m, f) => p.debug(f ?? {}, m),
    child: (fields) => wrap(p.child(fields)),
  };
}

/** The last `time` field made, and the millisecond it is for: a busy server writes several lines per millisecond. */
let timeMs = -1;
let timeField = '';

function isoTime(): string {
  const now = Date.now();
  if (now !== timeMs) {
    timeMs = now;
    timeField = `,"time":"${new Date(now).toISOString()}"`;
  }
  return timeField;
}

/** `entry` with each Error value replaced: by `{ message, stack }` for JSON, by its stack (or message) for text. */
function plainErrors(entry: Record<string, unknown>, text: boolean): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key in entry) {
    const v = entry[key];
    if (!(v instanceof Error)) continue;
    copy ??= { ...entry };
    copy[key] = text ? (v.stack ?? v.message) : { message: v.message, stack: v.stack };
  }
  return copy ?? entry;
}

/** A destination that writes each of pino's JSON lines to `out` as a text line. */
function textDestination(out: DestinationStream): DestinationStream {
  return {
    write(json: string): void {
      const parsed: unknown = JSON.parse(json);
      if (!isFields(parsed)) return;
      const { time, level, msg, ...rest } = parsed;
      out.write(`${textLine({ time, level, msg, ...rest })}\n`);
    },
  };
}

function isFields(v: unknown): v is Fields {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function textLine(entry: Fields): string {
  return Object.entries(entry)
    .map(([k, v]) => `${k}=${formatValue(v)}`)
    .join(' ');
}

function formatValue(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /^[\w./:@+-]*$/.test(s ?? '') ? (s ?? '') : JSON.stringify(s);
}
