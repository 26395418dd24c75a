/** The logger's two formats, its fields and levels, through a `write` that keeps each line. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Logger, createLogger } from './log.js';

function capture(format: 'text' | 'json', base?: Record<string, unknown>): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = createLogger({ level: 'info', format, write: (l) => lines.push(l) }, base);
  return { log, lines };
}

describe('logger', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('stamps each line with the millisecond it is written in (the field is made once per millisecond)', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-12-07T14:00:00.000Z'));
    const { log, lines } = capture('json');
    log.info('a');
    log.info('b');
    vi.setSystemTime(new Date('2026-12-07T14:00:00.005Z'));
    log.info('c');
    const times = lines.map((l) => (JSON.parse(l) as { time: string }).time);
    expect(times).toEqual(['2026-12-07T14:00:00.000Z', '2026-12-07T14:00:00.000Z', '2026-12-07T14:00:00.005Z']);
  });

  it('writes JSON lines with time, level name, msg, the base fields, a child\'s and the entry\'s', () => {
    const { log, lines } = capture('json', { service: 'berth' });
    log.child({ requestId: 'r1' }).info('request', { status: 200, path: '/v2/' });
    expect(lines).toHaveLength(1);
    expect(lines[0]?.endsWith('\n')).toBe(true);
    const entry = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    expect(entry).toEqual({ time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), level: 'info', msg: 'request', service: 'berth', requestId: 'r1', status: 200, path: '/v2/' });
  });

  it('writes text lines as time, level, msg, then key=value, quoting what needs it', () => {
    const { log, lines } = capture('text', { service: 'berth' });
    log.warn('debug listener', { url: 'http://127.0.0.1:5001', note: 'two words', n: 3 });
    expect(lines[0]).toMatch(/^time=\d{4}-\S+Z level=warn msg="debug listener" service=berth url=http:\/\/127\.0\.0\.1:5001 note="two words" n=3\n$/);
  });

  it('drops entries below the level', () => {
    const { log, lines } = capture('json');
    log.debug('hidden');
    log.error('shown');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['shown']);
  });

  it('writes an Error field as its message and stack', () => {
    const err = new Error('disk full');
    const json = capture('json');
    json.log.error('failed', { err, error: err });
    const entry = JSON.parse(json.lines[0] ?? '') as Record<string, unknown>;
    expect(entry['err']).toEqual({ message: 'disk full', stack: err.stack });
    expect(entry['error']).toEqual({ message: 'disk full', stack: err.stack });
    const text = capture('text');
    text.log.error('failed', { error: err });
    expect(text.lines[0]).toContain(`error=${JSON.stringify(err.stack)}`);
  });
});
