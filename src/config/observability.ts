/**
 * The keys that decide what Berth tells its operators: `log.fields`, `log.accesslog` and
 * `health.storagedriver`. (Level and formatter are read in parse.ts.)
 */
import { ConfigError, Lit, type RawMap, describe, lookup, readBool, readDuration } from './raw.js';
import { DEFAULT_STORAGE_HEALTH, type StorageHealthConfig } from './schema.js';

/** `log.fields`: a flat mapping of names to scalar values, added to every log line. */
export function readLogFields(root: RawMap): Record<string, string> {
  const raw = lookup(root, 'log.fields');
  if (raw === undefined) return {};
  if (!(raw instanceof Map)) throw new ConfigError('log.fields', `expected a mapping, got ${describe(raw)}`);
  const fields: Record<string, string> = {};
  for (const [name, value] of raw) {
    if (!(value instanceof Lit) || value.value === null || typeof value.value === 'object') {
      throw new ConfigError(`log.fields.${name}`, `expected a string, got ${describe(value)}`);
    }
    fields[name] = typeof value.value === 'string' ? value.value : value.text;
  }
  return fields;
}

export function readAccessLog(root: RawMap): { disabled: boolean } {
  return { disabled: readBool(root, 'log.accesslog.disabled', false) };
}

/** `health.storagedriver`, with Berth's defaults (on, 10 s, threshold 3). */
export function readStorageHealth(root: RawMap): StorageHealthConfig {
  const key = 'health.storagedriver';
  const thresholdRaw = lookup(root, `${key}.threshold`);
  let threshold = DEFAULT_STORAGE_HEALTH.threshold;
  if (thresholdRaw !== undefined) {
    const n = thresholdRaw instanceof Lit ? Number(thresholdRaw.value) : Number.NaN;
    if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${key}.threshold`, `expected a whole number of at least 1, got ${describe(thresholdRaw)}`);
    threshold = n;
  }
  return {
    enabled: readBool(root, `${key}.enabled`, DEFAULT_STORAGE_HEALTH.enabled),
    intervalMs: readDuration(root, `${key}.interval`, DEFAULT_STORAGE_HEALTH.intervalMs, { positive: true }),
    threshold,
  };
}
