/**
 * The `notifications` section: registry:2's webhook endpoints and event options.
 *
 * registry:2's semantics (configuration/configuration.go Notifications, Endpoint, Ignore;
 * notifications/endpoint.go defaults): a timeout, threshold or backoff that is unset, zero or negative
 * means the default (1s, 10, 1s); a duration written as a bare integer counts nanoseconds, as Go's
 * YAML decoding of time.Duration does; header values are lists. Berth is stricter where registry:2
 * silently accepts a configuration that cannot work: every enabled endpoint needs a unique name and an
 * absolute http(s) URL, header names must be HTTP tokens, and `ignore.actions` must name actions that
 * exist (push, pull, mount, delete, and Berth's quota). Keys inside an endpoint are checked here, since the key table of
 * schema.ts cannot look inside a list.
 */
import type { EventAction } from '../notifications/event.js';
import type { NotifierEndpoint } from '../notifications/notifier.js';
import { ConfigError, Lit, type Raw, type RawMap, describe, lookup, readBool, readGoDuration, readString, stringList } from './raw.js';

/**
 * One registry:2 `notifications.endpoints[]` entry, with registry:2's defaults applied: the notifier's
 * own endpoint type (notifications/notifier.ts NotifierEndpoint, fields documented in
 * notifications/endpoint.ts EndpointOptions), so `createNotifier` takes the configured endpoints as
 * they are. `url` is '' only when the endpoint is disabled and names none.
 */
export interface NotificationEndpointConfig extends NotifierEndpoint {
  /** Always set: false unless the file says `disabled: true` (registry:2 skips a disabled endpoint at start). */
  readonly disabled: boolean;
  /** `ignore.actions`, checked to name actions that exist. */
  readonly ignoredActions: readonly NotificationAction[];
}

/** The event actions registry:2 sends, and Berth's `quota`. */
export type NotificationAction = EventAction;

export interface NotificationsConfig {
  readonly endpoints: readonly NotificationEndpointConfig[];
  /** `events.includereferences`: manifest events list the descriptors the manifest refers to. */
  readonly includeReferences: boolean;
}

/** registry:2's endpoint defaults (notifications/endpoint.go). */
export const NOTIFICATION_DEFAULTS = Object.freeze({ timeoutMs: 1000, threshold: 10, backoffMs: 1000 });

const ACTIONS: readonly NotificationAction[] = ['push', 'pull', 'mount', 'delete', 'quota'];

const ENDPOINT_KEYS: ReadonlySet<string> = new Set([
  'name', 'disabled', 'url', 'headers', 'timeout', 'threshold', 'backoff', 'ignoredmediatypes', 'ignore',
]);
const IGNORE_KEYS: ReadonlySet<string> = new Set(['mediatypes', 'actions']);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Reads `notifications` as Config's optional field: `{ notifications }`, or `{}` when no endpoint is
 * configured (nothing to send, so a file with the section commented out equals one without it).
 */
export function readNotifications(root: RawMap): { notifications?: NotificationsConfig } {
  const includeReferences = readBool(root, 'notifications.events.includereferences', false);
  const raw = lookup(root, 'notifications.endpoints');
  if (raw === undefined) return {};
  if (!Array.isArray(raw)) {
    throw new ConfigError('notifications.endpoints', `expected a list of endpoints, got ${describe(raw)}`);
  }
  if (raw.length === 0) return {};
  const endpoints = raw.map((item, i) => readEndpoint(item, `notifications.endpoints[${i}]`));
  const seen = new Set<string>();
  endpoints.forEach((e, i) => {
    if (seen.has(e.name)) throw new ConfigError(`notifications.endpoints[${i}].name`, `${JSON.stringify(e.name)} is used by an earlier endpoint; names must be unique`);
    seen.add(e.name);
  });
  return { notifications: { endpoints, includeReferences } };
}

function readEndpoint(item: Raw, key: string): NotificationEndpointConfig {
  if (!(item instanceof Map)) throw new ConfigError(key, `expected a mapping with name and url, got ${describe(item)}`);
  checkKeys(item, ENDPOINT_KEYS, key);
  const ignore = item.get('ignore');
  if (ignore instanceof Map) checkKeys(ignore, IGNORE_KEYS, `${key}.ignore`);
  const scope = scoped(key, item);
  const disabled = readBool(scope, `${key}.disabled`, false);
  const name = readString(scope, `${key}.name`) ?? '';
  if (name === '') throw new ConfigError(`${key}.name`, 'required');
  return {
    name,
    disabled,
    url: readEndpointUrl(scope, `${key}.url`, disabled),
    headers: readHeaderLists(scope, `${key}.headers`),
    timeoutMs: readEndpointDuration(scope, `${key}.timeout`, NOTIFICATION_DEFAULTS.timeoutMs),
    threshold: readThreshold(scope, `${key}.threshold`),
    backoffMs: readEndpointDuration(scope, `${key}.backoff`, NOTIFICATION_DEFAULTS.backoffMs),
    ignoredMediaTypes: [
      ...(readList(scope, `${key}.ignoredmediatypes`) ?? []),
      ...(readList(scope, `${key}.ignore.mediatypes`) ?? []),
    ],
    ignoredActions: readActions(scope, `${key}.ignore.actions`),
  };
}

/** A tree in which `key` (dotted, e.g. `notifications.endpoints[0]`) leads to `item`, so raw.ts readers name full keys. */
function scoped(key: string, item: RawMap): RawMap {
  let node: RawMap = item;
  for (const segment of key.split('.').reverse()) node = new Map<string, Raw>([[segment, node]]);
  return node;
}

function checkKeys(map: RawMap, known: ReadonlySet<string>, key: string): void {
  for (const name of map.keys()) {
    if (!known.has(name)) throw new ConfigError(`${key}.${name}`, 'unknown key');
  }
}

function readEndpointUrl(scope: RawMap, key: string, disabled: boolean): string {
  const value = readString(scope, key) ?? '';
  if (value === '' && disabled) return '';
  if (value === '') throw new ConfigError(key, 'required');
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new ConfigError(key, `expected an absolute http(s) URL, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** registry:2's http.Header: each header name maps to a list of values. */
function readHeaderLists(scope: RawMap, key: string): Record<string, readonly string[]> {
  const raw = lookup(scope, key);
  if (raw === undefined) return {};
  if (!(raw instanceof Map)) throw new ConfigError(key, `expected a mapping of header names to lists of values, got ${describe(raw)}`);
  const headers: Record<string, readonly string[]> = {};
  for (const [name, value] of raw) {
    const full = `${key}.${name}`;
    if (!HEADER_NAME.test(name)) throw new ConfigError(full, 'not a valid header name');
    if (!Array.isArray(value)) throw new ConfigError(full, `expected a list of values (registry:2 requires lists), got ${describe(value)}`);
    const values = stringList(value, full);
    if (values.some((v) => /[\r\n\0]/.test(v))) throw new ConfigError(full, 'values must not contain line breaks');
    headers[name] = values;
  }
  return headers;
}

/**
 * A Go time.Duration as registry:2 decodes it: a duration string (`500ms`, `1s`) or an integer of
 * nanoseconds. Unset, zero or negative means `fallbackMs`.
 */
function readEndpointDuration(scope: RawMap, key: string, fallbackMs: number): number {
  const ms = readGoDuration(scope, key, '"1s" or "500ms"');
  return ms !== undefined && ms > 0 ? ms : fallbackMs;
}

function readThreshold(scope: RawMap, key: string): number {
  const raw = lookup(scope, key);
  if (raw === undefined) return NOTIFICATION_DEFAULTS.threshold;
  const n = raw instanceof Lit ? raw.value : undefined;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw new ConfigError(key, `expected a whole number, got ${describe(raw)}`);
  return n > 0 ? n : NOTIFICATION_DEFAULTS.threshold;
}

function readList(scope: RawMap, key: string): string[] | undefined {
  const raw = lookup(scope, key);
  return raw === undefined ? undefined : stringList(raw, key);
}

function readActions(scope: RawMap, key: string): NotificationAction[] {
  return (readList(scope, key) ?? []).map((value, i) => {
    const action = ACTIONS.find((a) => a === value);
    if (action === undefined) throw new ConfigError(`${key}[${i}]`, `expected one of ${ACTIONS.join(', ')}, got ${JSON.stringify(value)}`);
    return action;
  });
}
