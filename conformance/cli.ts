/**
 * `npm run conformance -- <url> [flags]`: command line and environment → settings → run → one line per
 * check → `N passed, N failed, N skipped`. Exit 0 when nothing failed, 1 when a check failed, 2 for bad
 * arguments. Flags win over environment variables.
 */
import { pathToFileURL } from 'node:url';
import type { Settings, Workflow } from './check.js';
import { DEFAULT_SETTINGS, WORKFLOWS, formatResult, runConformance } from './run.js';

/** How to call the suite, printed by `--help` and after a bad argument. */
export const USAGE = `usage: npm run conformance -- <base-url> [flags]

  <base-url>                 the registry, e.g. http://127.0.0.1:5000     env CONFORMANCE_URL
  --namespace <name>         repository to use (default ${DEFAULT_SETTINGS.namespace})   env CONFORMANCE_NAMESPACE
  --other-namespace <name>   second repository, target of cross-mounts (default ${DEFAULT_SETTINGS.otherNamespace})
                                                                           env CONFORMANCE_OTHER_NAMESPACE
  --user <user:password>     credentials: Basic, or Bearer tokens got with them   env CONFORMANCE_USERNAME, CONFORMANCE_PASSWORD
  --auto-mount, --no-auto-mount  expect ?mount= without from to mount (default: not expected)
                                                                           env CONFORMANCE_AUTO_MOUNT=true|false
  --delete, --no-delete      deletion enabled (default) or disabled (deletes must be 400/405)
                                                                           env CONFORMANCE_DELETE=true|false
  --only <workflows>         comma-separated: ${WORKFLOWS.join(',')} (default: all)   env CONFORMANCE_ONLY
  --timeout <seconds>        per request (default ${DEFAULT_SETTINGS.timeoutMs / 1000})                  env CONFORMANCE_TIMEOUT
  --help                     this text`;

/** What the command line asks for: a run, the usage, or an error to print with the usage. */
export type Parsed = { readonly settings: Settings } | { readonly help: true } | { readonly error: string };

const NAME = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
type Env = Readonly<Record<string, string | undefined>>;

class UsageError extends Error {}

function bool(name: string, value: string): boolean {
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new UsageError(`${name}: expected true or false, got ${JSON.stringify(value)}`);
}

function workflows(value: string): Workflow[] {
  const names = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const bad = names.find((n) => !(WORKFLOWS as readonly string[]).includes(n));
  if (bad !== undefined || names.length === 0) throw new UsageError(`--only: expected some of ${WORKFLOWS.join(',')}, got ${JSON.stringify(value)}`);
  return names as Workflow[];
}

function credentials(value: string): { username: string; password: string } {
  const at = value.indexOf(':');
  if (at <= 0) throw new UsageError('--user: expected <user:password>');
  return { username: value.slice(0, at), password: value.slice(at + 1) };
}

/** The raw values: environment first, then flags over it. */
function collect(argv: readonly string[], env: Env): Map<string, string> {
  const values = new Map<string, string>();
  const fromEnv: [string, string][] = [
    ['url', 'CONFORMANCE_URL'], ['namespace', 'CONFORMANCE_NAMESPACE'], ['other-namespace', 'CONFORMANCE_OTHER_NAMESPACE'],
    ['auto-mount', 'CONFORMANCE_AUTO_MOUNT'], ['delete', 'CONFORMANCE_DELETE'], ['only', 'CONFORMANCE_ONLY'], ['timeout', 'CONFORMANCE_TIMEOUT'],
  ];
  for (const [key, name] of fromEnv) if (env[name] !== undefined && env[name] !== '') values.set(key, env[name] ?? '');
  if (env['CONFORMANCE_USERNAME'] !== undefined) values.set('user', `${env['CONFORMANCE_USERNAME']}:${env['CONFORMANCE_PASSWORD'] ?? ''}`);
  const args = [...argv];
  for (let arg = args.shift(); arg !== undefined; arg = args.shift()) {
    const m = /^--(no-)?([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (m === null) {
      if (arg.startsWith('-')) throw new UsageError(`unknown flag ${arg}`);
      if (values.has('positional-url')) throw new UsageError(`unexpected argument ${arg}`);
      values.set('positional-url', arg);
      continue;
    }
    const [, no, key = '', inline] = m;
    if (key === 'help' || key === 'auto-mount' || key === 'delete') {
      if (inline !== undefined) throw new UsageError(`--${key} takes no value`);
      values.set(key, no === undefined ? 'true' : 'false');
    } else if (no === undefined && ['namespace', 'other-namespace', 'user', 'only', 'timeout'].includes(key)) {
      const value = inline ?? args.shift();
      if (value === undefined) throw new UsageError(`--${key} needs a value`);
      values.set(key, value);
    } else {
      throw new UsageError(`unknown flag ${arg}`);
    }
  }
  return values;
}

function build(values: Map<string, string>): Settings {
  const url = values.get('positional-url') ?? values.get('url');
  if (url === undefined) throw new UsageError('the registry base URL is missing');
  if (!/^https?:\/\/[^/]+/i.test(url)) throw new UsageError(`not an http(s) URL: ${url}`);
  const namespace = values.get('namespace') ?? DEFAULT_SETTINGS.namespace;
  const otherNamespace = values.get('other-namespace') ?? DEFAULT_SETTINGS.otherNamespace;
  for (const n of [namespace, otherNamespace]) if (!NAME.test(n)) throw new UsageError(`not a repository name: ${n}`);
  if (namespace === otherNamespace) throw new UsageError('--namespace and --other-namespace must differ');
  const timeout = Number(values.get('timeout') ?? DEFAULT_SETTINGS.timeoutMs / 1000);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError(`--timeout: expected seconds, got ${values.get('timeout') ?? ''}`);
  const user = values.get('user');
  return {
    url,
    namespace,
    otherNamespace,
    autoMount: values.has('auto-mount') ? bool('auto-mount', values.get('auto-mount') ?? '') : DEFAULT_SETTINGS.autoMount,
    deleteEnabled: values.has('delete') ? bool('delete', values.get('delete') ?? '') : DEFAULT_SETTINGS.deleteEnabled,
    only: values.has('only') ? workflows(values.get('only') ?? '') : DEFAULT_SETTINGS.only,
    timeoutMs: Math.round(timeout * 1000),
    ...(user !== undefined && { credentials: credentials(user) }),
  };
}

/** Settings from the command line (without `node` and the script) and the environment. */
export function parseArgs(argv: readonly string[], env: Env): Parsed {
  try {
    const values = collect(argv, env);
    if (values.get('help') === 'true') return { help: true };
    return { settings: build(values) };
  } catch (err) {
    if (err instanceof UsageError) return { error: err.message };
    throw err;
  }
}

/** Runs the command; answers the exit code. */
export async function main(argv: readonly string[], env: Env, out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const parsed = parseArgs(argv, env);
  if ('help' in parsed) {
    out(USAGE);
    return 0;
  }
  if ('error' in parsed) {
    err(`conformance: ${parsed.error}\n${USAGE}`);
    return 2;
  }
  const summary = await runConformance(parsed.settings, (r) => out(formatResult(r)));
  out(`${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`);
  return summary.failed > 0 ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const write = (stream: NodeJS.WriteStream) => (line: string): void => void stream.write(`${line}\n`);
  main(process.argv.slice(2), process.env, write(process.stdout), write(process.stderr)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`conformance: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
