/**
 * `docker build` against a private daemon (test/helpers/dockerd.ts), with BuildKit when a docker CLI
 * here can drive it. Why it matters: with the vfs storage driver the classic builder copies the whole
 * root file system for every instruction, ENV and EXPOSE included (measured here: about 3.5 to 6
 * minutes for the Berth image), while BuildKit makes layers only for RUN and COPY (about 1.7 minutes).
 *
 * Which CLI: docker CLIs before 23 have BuildKit built in (`DOCKER_BUILDKIT=1 docker build`, Debian's
 * docker.io 20.10 is one); from 23 on, `docker build` needs the buildx plugin for BuildKit, and
 * without it falls back to the classic builder. So the first of `docker` on PATH and
 * /usr/bin/docker that is older than 23 or has buildx is used; when none is, the classic builder runs
 * (slower) and the reason is printed.
 */
import { join } from 'node:path';
import type { Dockerd } from './dockerd.js';
import { type RunResult, run, runResult, which } from './tools.js';

export interface DockerBuildOptions {
  /** The build context (a directory holding the Dockerfile). */
  readonly context: string;
  readonly tag: string;
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** `--network`; `host` lets RUN steps reach the npm registry without a bridge. */
  readonly network?: string;
  readonly timeoutMs?: number;
}

export interface DockerBuild {
  readonly result: RunResult;
  /** `buildkit (<cli>)` or `classic builder (<reason>)`. */
  readonly builder: string;
}

interface Builder {
  readonly cli: string;
  readonly buildkit: boolean;
  readonly note: string;
}

async function clientMajor(cli: string, env: Readonly<Record<string, string | undefined>>): Promise<number | undefined> {
  const r = await runResult(cli, ['version', '--format', '{{.Client.Version}}'], { env, timeoutMs: 30_000 });
  const m = /^(\d+)\./.exec(r.stdout.trim());
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

async function chooseBuilder(d: Dockerd): Promise<Builder> {
  const candidates = [...new Set([which('docker'), '/usr/bin/docker'].filter((c): c is string => c !== undefined))];
  const seen: string[] = [];
  for (const cli of candidates) {
    const major = await clientMajor(cli, d.env).catch(() => undefined);
    if (major === undefined) continue;
    if (major < 23) return { cli, buildkit: true, note: `buildkit (${cli}, CLI ${major}.x)` };
    const buildx = await runResult(cli, ['buildx', 'version'], { env: d.env, timeoutMs: 30_000 }).catch(() => undefined);
    if (buildx?.code === 0) return { cli, buildkit: true, note: `buildkit (${cli} with buildx)` };
    seen.push(`${cli} is CLI ${major}.x without buildx`);
  }
  const cli = candidates[0];
  if (cli === undefined) throw new Error('no docker CLI found');
  return { cli, buildkit: false, note: `classic builder (${seen.join('; ') || 'no CLI answered docker version'})` };
}

/** Builds `opts.context` into `opts.tag`. @throws RunError with the build's output when it fails. */
export async function dockerBuild(d: Dockerd, opts: DockerBuildOptions): Promise<DockerBuild> {
  const builder = await chooseBuilder(d);
  const args = ['build', '--tag', opts.tag, '--file', join(opts.context, 'Dockerfile')];
  if (builder.buildkit) args.push('--progress=plain');
  if (opts.network !== undefined) args.push('--network', opts.network);
  for (const [k, v] of Object.entries(opts.buildArgs ?? {})) args.push('--build-arg', `${k}=${v}`);
  args.push(opts.context);
  const result = await run(builder.cli, args, {
    env: { ...d.env, DOCKER_BUILDKIT: builder.buildkit ? '1' : '0' },
    timeoutMs: opts.timeoutMs ?? 20 * 60_000,
  });
  return { result, builder: builder.note };
}
