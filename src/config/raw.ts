/**
 * The raw configuration tree and typed reads from it, shared by parse.ts (the whole document) and the
 * section readers (auth.ts): YAML scalars that remember the text they were written as, lookups by
 * dotted key, and readers that throw one ConfigError naming the key.
 */

/** A configuration problem. Its message is one line: `config: <key>: <what is wrong>`. */
export class ConfigError extends Error {
  /** Stable code for callers that branch on the kind of error. */
  readonly code = 'CONFIG_INVALID';
  override readonly name = 'ConfigError';
  /** The dotted key at fault (`http.addr`), or the file path for unreadable or malformed YAML. */
  readonly key: string;
  /** The REGISTRY_* variable that set the key, when one did (then the message names it first). */
  readonly variable: string | undefined;

  constructor(key: string, problem: string, options?: ErrorOptions & { readonly variable?: string }) {
    const where = options?.variable === undefined ? key : `${options.variable} (${key})`;
    super(`config: ${where}: ${problem}`.replace(/\s*[\r\n]+\s*/g, ' '), options);
    this.key = key;
    this.variable = options?.variable;
  }
}

/**
 * Parses a Go duration string (`168h`, `1h30m`, `1.5h`, `30s`, `500ms`, `10us`, `-2m`, `0`) into
 * milliseconds, which are fractional below one millisecond.
 * @throws SyntaxError when `s` is not a Go duration (`5`, `1d`, `h`, ``); callers turn it into a ConfigError.
 */
export function parseDuration(s: string): number {
  if (/^[-+]?0$/.test(s)) return 0;
  if (!DURATION.test(s)) throw new SyntaxError(`invalid duration ${JSON.stringify(s)}`);
  let ms = 0;
  for (const [, num, unit] of s.matchAll(DURATION_PART)) {
    ms += (Number(num) * (UNIT_NS[unit ?? ''] ?? Number.NaN)) / 1e6;
  }
  if (!Number.isFinite(ms)) throw new SyntaxError(`invalid duration ${JSON.stringify(s)}`);
  return s.startsWith('-') ? -ms : ms;
}

const UNIT_NS: Readonly<Record<string, number>> = {
  ns: 1, us: 1e3, '\u00b5s': 1e3, '\u03bcs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9,
};
const UNIT = '(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h)';
const NUMBER = '(?:\\d+\\.?\\d*|\\.\\d+)';
const DURATION = new RegExp(`^[-+]?(?:${NUMBER}${UNIT})+$`);
const DURATION_PART = new RegExp(`(${NUMBER})(${UNIT})`, 'g');

/** A YAML scalar: its value and the text it was written as. */
export class Lit {
  constructor(readonly value: unknown, readonly text: string) {}
}
export type Raw = Lit | RawMap | Raw[];
export type RawMap = Map<string, Raw>;
export const NULL = new Lit(null, '');

export function lookup(root: RawMap, key: string): Raw | undefined {
  let node: Raw | undefined = root;
  for (const segment of key.split('.')) {
    node = node instanceof Map ? node.get(segment) : undefined;
  }
  return node instanceof Lit && node.value === null ? undefined : node;
}

export function describe(raw: Raw): string {
  if (raw instanceof Map) return 'a mapping';
  if (Array.isArray(raw)) return 'a list';
  return typeof raw.value === 'string' ? JSON.stringify(raw.value) : raw.text || String(raw.value);
}

export function isEmpty(raw: Raw): boolean {
  if (raw instanceof Lit) return raw.value === null || raw.value === '';
  return raw instanceof Map ? raw.size === 0 : raw.length === 0;
}

// ---- Typed reads ----

export function readString(root: RawMap, key: string): string | undefined {
  const raw = lookup(root, key);
  if (raw === undefined) return undefined;
  if (!(raw instanceof Lit)) throw new ConfigError(key, `expected a string, got ${describe(raw)}`);
  return typeof raw.value === 'string' ? raw.value : raw.text;
}

export function readBool(root: RawMap, key: string, fallback: boolean): boolean {
  const raw = lookup(root, key);
  if (raw === undefined) return fallback;
  if (raw instanceof Lit && typeof raw.value === 'boolean') return raw.value;
  throw new ConfigError(key, `expected true or false, got ${describe(raw)}`);
}

export function readChoice<T extends string>(root: RawMap, key: string, choices: readonly T[], fallback: T): T {
  const value = readString(root, key);
  if (value === undefined) return fallback;
  const choice = choices.find((c) => c === value);
  if (choice !== undefined) return choice;
  throw new ConfigError(key, `expected one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
}

export function readDuration(root: RawMap, key: string, fallbackMs: number, o: { positive: boolean }): number {
  const text = readString(root, key);
  if (text === undefined) return fallbackMs;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    const problem = `expected a duration like "24h", "1h30m" or "30s", got ${JSON.stringify(text)}`;
    throw new ConfigError(key, problem, { cause: err });
  }
  if (ms < 0 || (o.positive && ms === 0)) {
    const bound = o.positive ? 'greater than zero' : 'zero or more';
    throw new ConfigError(key, `must be ${bound}, got ${JSON.stringify(text)}`);
  }
  return ms;
}

/** A list of strings; undefined when the key is absent. */
export function readStringList(root: RawMap, key: string): string[] | undefined {
  const raw = lookup(root, key);
  return raw === undefined ? undefined : stringList(raw, key);
}

/** `raw` as a list of strings (scalars written as numbers or booleans keep their text). */
export function stringList(raw: Raw, key: string): string[] {
  if (!Array.isArray(raw)) throw new ConfigError(key, `expected a list of strings, got ${describe(raw)}`);
  return raw.map((item, i) => {
    if (!(item instanceof Lit) || item.value === null || typeof item.value === 'object') {
      throw new ConfigError(`${key}[${i}]`, `expected a string, got ${describe(item)}`);
    }
    return typeof item.value === 'string' ? item.value : item.text;
  });
}

/**
 * A Go time.Duration as registry:2 decodes it, in milliseconds: a duration string (`500ms`, `1s`) or
 * an integer of nanoseconds; undefined when the key is absent. Negative values are returned as such.
 * @throws ConfigError naming the key, with `example` (e.g. `"1s" or "500ms"`) in the message
 */
export function readGoDuration(root: RawMap, key: string, example: string): number | undefined {
  const raw = lookup(root, key);
  if (raw === undefined) return undefined;
  const problem = `expected a duration like ${example}, got ${describe(raw)}`;
  if (!(raw instanceof Lit)) throw new ConfigError(key, problem);
  if (typeof raw.value === 'number' && Number.isInteger(raw.value)) return raw.value / 1e6;
  try {
    return parseDuration(typeof raw.value === 'string' ? raw.value : raw.text);
  } catch (err) {
    throw new ConfigError(key, problem, { cause: err });
  }
}
