/**
 * The programs the bench runs, found on PATH or installed: each missing one is installed from Debian
 * with `apt-get install -y` when the bench runs as root (after one `apt-get update` should the first
 * install fail for want of package lists), and named with its install command otherwise. Checked once
 * at the start of a run, so a missing tool stops it before any scenario rather than halfway through.
 */
import { runResult, which } from './proc.js';

/** Each program and the Debian package that ships it. */
export const BENCH_TOOLS: Readonly<Record<string, string>> = {
  'docker-registry': 'docker-registry', // the baseline, CNCF distribution 2.8
  wrk: 'wrk', // GET request rates
  hey: 'hey', // HEAD request rates (wrk cannot send HEAD)
  curl: 'curl', // whole-blob downloads
};

/**
 * Makes sure every program in `tools` is on PATH, installing the missing ones when root.
 * @throws naming what is missing and how to install it, when it cannot be installed here
 */
export async function ensureTools(tools: Readonly<Record<string, string>>, log: (line: string) => void): Promise<void> {
  const missing = Object.entries(tools).filter(([bin]) => which(bin) === undefined);
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map(([, pkg]) => pkg))];
  const command = `apt-get install -y ${packages.join(' ')}`;
  if (process.getuid?.() !== 0) throw new Error(`missing ${missing.map(([bin]) => bin).join(', ')}: run \`${command}\` as root first`);
  log(`installing ${packages.join(', ')} (${command}) …`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = await runResult('apt-get', ['install', '-y', ...packages], { timeoutMs: 600_000, env });
  if (r.code !== 0) {
    await runResult('apt-get', ['update'], { timeoutMs: 600_000, env });
    r = await runResult('apt-get', ['install', '-y', ...packages], { timeoutMs: 600_000, env });
  }
  const still = missing.filter(([bin]) => which(bin) === undefined).map(([bin]) => bin);
  if (still.length > 0) throw new Error(`${command} did not install ${still.join(', ')}:\n${r.stdout.slice(-2000)}${r.stderr.slice(-2000)}`);
}
