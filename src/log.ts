/**
 * A small structured logger: one line per entry on stderr, as text (`time level msg key=value`, like
 * registry:2's logrus text format) or JSON. Entries below the configured level are dropped.
 */
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

const RANK: Readonly<Record<Level, number>> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface LoggerOptions {
  readonly level: Level;
  readonly format: 'text' | 'json';
  readonly write?: (line: string) => void;
}

export function createLogger(opts: LoggerOptions, base: Fields = {}): Logger {
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const emit = (level: Level, msg: string, fields?: Fields): void => {
    if (RANK[level] > RANK[opts.level]) return;
    const entry = { time: new Date().toISOString(), level, msg, ...base, ...fields };
    write(`${opts.format === 'json' ? JSON.stringify(entry, errorReplacer) : textLine(entry)}\n`);
  };
  return {
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    debug: (m, f) => emit('debug', m, f),
    child: (fields) => createLogger(opts, { ...base, ...fields }),
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  return value instanceof Error ? { message: value.message, stack: value.stack } : value;
}

function textLine(entry: Fields): string {
  return Object.entries(entry)
    .map(([k, v]) => `${k}=${formatValue(v)}`)
    .join(' ');
}

function formatValue(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.stack ?? v.message);
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /^[\w./:@+-]*$/.test(s ?? '') ? (s ?? '') : JSON.stringify(s);
}
