/**
 * The Berth builds a hand-run probe compares, named on its command line as
 * `NAME=path/to/main.js`, then optionally `::ENV=VALUE` (set while that build starts) and
 * `::--node-flag` (given to its node), any number of each.
 */

export interface BuildArg {
  readonly name: string;
  /** The build's entry point (a `dist/main.js`). */
  readonly main: string;
  readonly env: ReadonlyArray<{ readonly key: string; readonly value: string }>;
  readonly nodeFlags: readonly string[];
}

/** One build from its command-line argument. @throws when `arg` is not NAME=path[::…] */
export function parseBuildArg(arg: string): BuildArg {
  const [head = '', ...extras] = arg.split('::');
  const m = /^([^=]+)=(.+)$/.exec(head);
  if (m?.[1] === undefined || m[2] === undefined) throw new Error(`expected NAME=path/to/main.js[::ENV=VALUE][::--node-flag], got ${arg}`);
  const env = extras.filter((e) => /^[A-Z_0-9]+=/.test(e)).map((e) => ({ key: e.slice(0, e.indexOf('=')), value: e.slice(e.indexOf('=') + 1) }));
  return { name: m[1], main: m[2], env, nodeFlags: extras.filter((e) => e.startsWith('--')) };
}
