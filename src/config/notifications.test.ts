import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFiles, sectionLoader } from './suite/helpers.js';

const files = configFiles('berth-notifications-config-');
beforeAll(files.open);
afterAll(files.close);
const { load, errorOf } = sectionLoader(files, 'notifications');

describe('notifications config', () => {
  it("reads registry:2's documented example, merging ignoredmediatypes and ignore.mediatypes", async () => {
    const { notifications, warnings } = await load(`notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      disabled: false
      url: https://my.listener.com/event
      headers:
        Authorization: [Bearer abc]
        X-Two: [one, two]
      timeout: 500ms
      threshold: 5
      backoff: 2s
      ignoredmediatypes:
        - application/octet-stream
      ignore:
        mediatypes:
           - application/vnd.oci.image.config.v1+json
        actions:
           - pull
`);
    expect(warnings).toEqual([]);
    expect(notifications).toEqual({
      includeReferences: true,
      endpoints: [{
        name: 'alistener',
        disabled: false,
        url: 'https://my.listener.com/event',
        headers: { Authorization: ['Bearer abc'], 'X-Two': ['one', 'two'] },
        timeoutMs: 500,
        threshold: 5,
        backoffMs: 2000,
        ignoredMediaTypes: ['application/octet-stream', 'application/vnd.oci.image.config.v1+json'],
        ignoredActions: ['pull'],
      }],
    });
  });

  it("applies registry:2's defaults: timeout 1s, threshold 10, backoff 1s, also for zero and negative values", async () => {
    const defaults = { timeoutMs: 1000, threshold: 10, backoffMs: 1000 };
    const a = await load('notifications:\n  endpoints:\n    - {name: a, url: "http://127.0.0.1:1/hook"}\n');
    expect(a.notifications?.endpoints[0]).toMatchObject({ ...defaults, disabled: false, headers: {}, ignoredMediaTypes: [], ignoredActions: [] });
    expect(a.notifications?.includeReferences).toBe(false);
    const b = await load('notifications:\n  endpoints:\n    - {name: a, url: "http://h/x", timeout: 0s, threshold: 0, backoff: -1s}\n');
    expect(b.notifications?.endpoints[0]).toMatchObject(defaults);
  });

  it('reads a bare integer duration as nanoseconds, as Go decodes time.Duration', async () => {
    const { notifications } = await load('notifications:\n  endpoints:\n    - {name: a, url: "http://h/x", timeout: 250000000, backoff: 3000000000}\n');
    expect(notifications?.endpoints[0]).toMatchObject({ timeoutMs: 250, backoffMs: 3000 });
  });

  it('is absent without endpoints, so a commented-out section changes nothing', async () => {
    expect((await load('')).notifications).toBeUndefined();
    expect((await load('notifications:\n  events:\n    includereferences: true\n')).notifications).toBeUndefined();
    expect((await load('notifications:\n  endpoints: []\n')).notifications).toBeUndefined();
  });

  it('keeps a disabled endpoint, which needs no url', async () => {
    const { notifications } = await load('notifications:\n  endpoints:\n    - {name: off, disabled: true}\n');
    expect(notifications?.endpoints).toEqual([expect.objectContaining({ name: 'off', disabled: true, url: '' })]);
  });

  it('takes endpoints from REGISTRY_NOTIFICATIONS_ENDPOINTS as YAML, like registry:2', async () => {
    const { notifications } = await load('', {
      REGISTRY_NOTIFICATIONS_ENDPOINTS: '[{name: env, url: "http://127.0.0.1:9/e", ignore: {actions: [pull, mount]}}]',
      REGISTRY_NOTIFICATIONS_EVENTS_INCLUDEREFERENCES: 'true',
    });
    expect(notifications).toMatchObject({ includeReferences: true, endpoints: [{ name: 'env', url: 'http://127.0.0.1:9/e', ignoredActions: ['pull', 'mount'] }] });
  });

  it("loads config.example.yaml's commented endpoint once uncommented, with the values its comments state", async () => {
    const example = await readFile(fileURLToPath(new URL('../../config.example.yaml', import.meta.url)), 'utf8');
    const lines = example.split('\n');
    const start = lines.indexOf('  # endpoints:');
    expect(start).toBeGreaterThan(0);
    const end = lines.indexOf('', start);
    const block = lines.slice(start, end).map((l) => l.replace(/^ {2}# ?/, '  ')).join('\n');
    const { notifications } = await load(`notifications:\n${block}\n`);
    expect(notifications?.endpoints).toEqual([{
      name: 'alistener', disabled: false, url: 'https://listener.example.com/event', headers: { Authorization: ['Bearer <token>'] },
      timeoutMs: 1000, threshold: 10, backoffMs: 1000, ignoredMediaTypes: ['application/octet-stream'], ignoredActions: ['pull'],
    }]);
  });

  it.each([
    ['notifications:\n  endpoints: {name: a}\n', 'config: notifications.endpoints: expected a list of endpoints, got a mapping'],
    ['notifications:\n  endpoints: [hook]\n', 'config: notifications.endpoints[0]: expected a mapping with name and url, got "hook"'],
    ['notifications:\n  endpoints:\n    - {url: "http://h/x"}\n', 'config: notifications.endpoints[0].name: required'],
    ['notifications:\n  endpoints:\n    - {name: a}\n', 'config: notifications.endpoints[0].url: required'],
    ['notifications:\n  endpoints:\n    - {name: a, url: "ftp://h/x"}\n', 'config: notifications.endpoints[0].url: expected an absolute http(s) URL, got "ftp://h/x"'],
    ['notifications:\n  endpoints:\n    - {name: a, url: "/hook"}\n', 'config: notifications.endpoints[0].url: expected an absolute http(s) URL, got "/hook"'],
    [
      'notifications:\n  endpoints:\n    - {name: a, url: "http://h/1"}\n    - {name: a, url: "http://h/2"}\n',
      'config: notifications.endpoints[1].name: "a" is used by an earlier endpoint; names must be unique',
    ],
    ['notifications:\n  endpoints:\n    - {name: a, url: "http://h/x", retries: 3}\n', 'config: notifications.endpoints[0].retries: unknown key'],
    ['notifications:\n  endpoints:\n    - {name: a, url: "http://h/x", ignore: {verbs: [pull]}}\n', 'config: notifications.endpoints[0].ignore.verbs: unknown key'],
    [
      'notifications:\n  endpoints:\n    - {name: a, url: "http://h/x", headers: {Authorization: Bearer x}}\n',
      'config: notifications.endpoints[0].headers.Authorization: expected a list of values (registry:2 requires lists), got "Bearer x"',
    ],
    ['notifications:\n  endpoints:\n    - {name: a, url: "http://h/x", headers: {"Bad Name": [x]}}\n', 'config: notifications.endpoints[0].headers.Bad Name: not a valid header name'],
    ['notifications:\n  endpoints:\n    - {name: a, url: "http://h/x", timeout: soon}\n', 'config: notifications.endpoints[0].timeout: expected a duration like "1s" or "500ms", got "soon"'],
    ['notifications:\n  endpoints:\n    - {name: a, url: "http://h/x", threshold: many}\n', 'config: notifications.endpoints[0].threshold: expected a whole number, got "many"'],
    [
      'notifications:\n  endpoints:\n    - {name: a, url: "http://h/x", ignore: {actions: [pulls]}}\n',
      'config: notifications.endpoints[0].ignore.actions[0]: expected one of push, pull, mount, delete, quota, got "pulls"',
    ],
    ['notifications:\n  endpoints:\n    - {name: a, url: "http://h/x", ignoredmediatypes: text/plain}\n', 'config: notifications.endpoints[0].ignoredmediatypes: expected a list of strings, got "text/plain"'],
    ['notifications:\n  events: {includereferences: maybe}\n', 'config: notifications.events.includereferences: expected true or false, got "maybe"'],
    ['notifications:\n  sinks: []\n', 'config: notifications.sinks: unknown key'],
  ])('refuses %j', async (section, message) => {
    expect(await errorOf(section)).toBe(message);
  });
});
