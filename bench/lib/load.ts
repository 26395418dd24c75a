/**
 * Request-rate scenarios through load generators from Debian, which cost the shared 2-core machine
 * less CPU than a Node one would:
 *
 * - wrk (`apt-get install -y wrk`, 4.1, C) for GETs: a Lua script per run sets the method, headers and
 *   (for ranged GETs) a fresh random Range per request, and prints one JSON line at the end with the
 *   request count, duration, latency percentiles and every kind of error.
 * - hey (`apt-get install -y hey`, Go) for HEADs, which wrk cannot do: its parser waits for the body a
 *   HEAD answer announces but never sends (wg/wrk issue #198). hey runs on one CPU (`-cpus 1`) and its
 *   summary gives requests/s, the latency percentiles and the status codes.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, which } from './proc.js';

export type { WrkResult as LoadResult };

export interface WrkRun {
  readonly url: string;
  readonly method: 'GET' | 'HEAD';
  readonly headers?: Readonly<Record<string, string>>;
  readonly connections: number;
  readonly threads: number;
  readonly seconds: number;
  /** Each request asks for `length` bytes at a random offset of a blob of `size` bytes. */
  readonly randomRange?: { readonly size: number; readonly length: number };
}

export interface WrkResult {
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly bytes: number;
  /** Socket errors and answers outside 2xx/3xx. */
  readonly errors: number;
}

export function wrkBinary(): string {
  const bin = which('wrk');
  if (bin === undefined) throw new Error('wrk not found on PATH (apt-get install -y wrk)');
  return bin;
}

const luaString = (s: string): string => JSON.stringify(s); // a JSON string is a valid Lua string literal here

function script(o: WrkRun): string {
  const headers = Object.entries(o.headers ?? {}).map(([k, v]) => `[${luaString(k)}] = ${luaString(v)}`);
  const lines = [`wrk.method = ${luaString(o.method)}`, `local base = { ${headers.join(', ')} }`];
  for (const [k, v] of Object.entries(o.headers ?? {})) lines.push(`wrk.headers[${luaString(k)}] = ${luaString(v)}`);
  if (o.randomRange !== undefined) {
    const { size, length } = o.randomRange;
    lines.push(
      'local counter = 0',
      'setup = function(thread) counter = counter + 1; thread:set("seed", counter) end',
      'init = function(args) math.randomseed(4242 + (seed or 0)) end',
      'request = function()',
      `  local start = math.random(0, ${size - length})`,
      `  base["Range"] = "bytes=" .. start .. "-" .. (start + ${length - 1})`,
      `  return wrk.format(${luaString(o.method)}, nil, base)`,
      'end',
    );
  }
  lines.push(
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format(\'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\\n\',',
    '    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(99),',
    '    e.connect + e.read + e.write + e.status + e.timeout))',
    'end',
  );
  return `${lines.join('\n')}\n`;
}

export interface HeyRun {
  readonly url: string;
  readonly method: 'HEAD';
  readonly headers?: Readonly<Record<string, string>>;
  readonly connections: number;
  readonly seconds: number;
}

/**
 * Runs hey as `o` says, on one CPU. @throws when hey fails, prints no summary, or saw any answer other
 * than 2xx or any error.
 */
export async function runHey(o: HeyRun): Promise<WrkResult> {
  const bin = which('hey');
  if (bin === undefined) throw new Error('hey not found on PATH (apt-get install -y hey)');
  const headers = Object.entries(o.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const args = ['-z', `${o.seconds}s`, '-c', String(o.connections), '-m', o.method, '-cpus', '1', '-t', '10', ...headers, o.url];
  const r = await run(bin, args, { timeoutMs: (o.seconds + 60) * 1000 });
  const num = (re: RegExp): number => {
    const m = re.exec(r.stdout);
    if (m?.[1] === undefined) throw new Error(`hey printed no ${String(re)}:\n${r.stdout}\n${r.stderr}`);
    return Number(m[1]);
  };
  const codes = [...r.stdout.matchAll(/\[(\d{3})\]\s+(\d+) responses/g)].map((m) => ({ status: Number(m[1]), n: Number(m[2]) }));
  const ok = codes.filter((c) => c.status >= 200 && c.status < 300).reduce((a, c) => a + c.n, 0);
  const bad = codes.reduce((a, c) => a + c.n, 0) - ok + (/Error distribution:/.test(r.stdout) ? 1 : 0);
  return {
    requests: ok,
    requestsPerSecond: num(/Requests\/sec:\s+([\d.]+)/),
    p50Ms: num(/50% in ([\d.]+) secs/) * 1000,
    p99Ms: num(/99% in ([\d.]+) secs/) * 1000,
    bytes: 0,
    errors: bad,
  };
}

/** Runs wrk as `o` says (the script is written into `dir`). @throws when wrk fails or prints no result. */
export async function runWrk(o: WrkRun, dir: string): Promise<WrkResult> {
  const file = join(dir, `wrk-${process.hrtime.bigint()}.lua`);
  await writeFile(file, script(o));
  const args = ['-t', String(o.threads), '-c', String(o.connections), '-d', `${o.seconds}s`, '--timeout', '10s', '-s', file, o.url];
  const r = await run(wrkBinary(), args, { timeoutMs: (o.seconds + 60) * 1000 });
  const m = /BENCHJSON (\{.*\})/.exec(r.stdout);
  if (m?.[1] === undefined) throw new Error(`wrk printed no result:\n${r.stdout}\n${r.stderr}`);
  const j = JSON.parse(m[1]) as { requests: number; duration_us: number; bytes: number; p50_us: number; p99_us: number; errors: number };
  return {
    requests: j.requests,
    requestsPerSecond: j.requests / (j.duration_us / 1e6),
    p50Ms: j.p50_us / 1000,
    p99Ms: j.p99_us / 1000,
    bytes: j.bytes,
    errors: j.errors,
  };
}
