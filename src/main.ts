#!/usr/bin/env node
/**
 * The `berth` command line: `berth serve|garbage-collect|check|index|htpasswd|version …`. Errors in the
 * configuration print one line and exit 1; a bad command line (an unknown command too) prints what is
 * wrong and the usage and exits 2; `--help` after any command prints the usage. Each command's modules
 * are loaded when it runs, so an offline command does not start by loading the server's.
 */
import { CommandError } from './cli/command-error.js';
import { packageVersion } from './cli/install-root.js';
import { ConfigError } from './config/raw.js';

const USAGE = `usage: berth <command> [args]

commands:
  serve [config.yml]   serve the registry (config file, else REGISTRY_CONFIGURATION_PATH,
                       else the built-in development config: :5000, ./data, delete enabled)
  garbage-collect [--dry-run|-d] [--delete-untagged|-m] [--retention] [--force] [config.yml]
                       delete blobs no manifest references, as registry:2's garbage-collect
                       (offline: refuses while a server serves the root, unless --force; the
                       server can also collect while it serves, see storage.maintenance.gc)
  check [--repair] [--force] [config.yml]
                       verify every blob's digest and every link, tag and manifest reference;
                       --repair removes dangling layer links and broken tags and moves corrupt
                       blobs aside (refused while a server serves the root, unless --force);
                       exit 1 while problems remain
  index rebuild [config.yml]
                       rebuild the listing index (<rootdirectory>/berth/index) from storage
                       (the server rebuilds it at every start; stop the server first)
  usage [prefix] [config.yml]
                       every repository's usage (exclusive, shared and logical bytes, tags,
                       manifests, last push and pull), largest exclusive bytes first; asks the
                       server serving the root, else rebuilds the index from the tree to read it
  htpasswd [--cost N] USER
                       print an htpasswd line (bcrypt) for USER; the password is read from
                       stdin, or asked for when stdin is a terminal
  version, --version   print Berth's version
  help, --help         show this text
  <file>.yml           the same as serve <file>.yml (as registry:2's image takes it)
`;

async function main(argv: string[]): Promise<number> {
  // As registry:2's image: `berth /etc/docker/registry/config.yml` means `berth serve <that file>`.
  const [command, ...args] = argv.length === 1 && /\.ya?ml$/.test(argv[0] ?? '') ? ['serve', ...argv] : argv;
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  switch (command) {
    case 'serve': {
      if (args.length > 1) return usageError('serve takes at most one configuration file');
      // One process, or the primary of `http.workers` (or one of its workers); signals stop it (serve-command.ts).
      await (await import('./cli/serve-command.js')).serveCommand(args[0], process.env);
      return -1; // keep running
    }
    case 'garbage-collect': {
      const { garbageCollect, parseGcArgs } = await import('./cli/gc.js');
      const cmd = parseGcArgs(args);
      if (typeof cmd === 'string') return usageError(cmd);
      return garbageCollect(cmd, process.env);
    }
    case 'check': {
      const { check, parseCheckArgs } = await import('./cli/check.js');
      const cmd = parseCheckArgs(args);
      if (typeof cmd === 'string') return usageError(cmd);
      return check(cmd, process.env);
    }
    case 'index':
      return (await import('./cli/index-command.js')).indexCommand(args, process.env);
    case 'usage': {
      const { parseUsageArgs, usageCommand } = await import('./cli/usage-command.js');
      const cmd = parseUsageArgs(args);
      if (typeof cmd === 'string') return usageError(cmd);
      return usageCommand(cmd, process.env);
    }
    case 'htpasswd':
      return (await import('./cli/htpasswd.js')).htpasswdCommand(args);
    case 'version':
    case '--version':
      process.stdout.write(`berth ${await packageVersion()} (node ${process.version})\n`);
      return 0;
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return 0;
    case undefined:
      process.stderr.write(USAGE);
      return 2;
    default:
      return usageError(`unknown command ${JSON.stringify(command)}`);
  }
}

function usageError(problem: string): number {
  process.stderr.write(`berth: ${problem}\n${USAGE}`);
  return 2;
}

/**
 * Exits once stdout and stderr have taken everything written to them: a write to a pipe that is full
 * waits in the stream, and process.exit would drop it (the offline commands print megabytes).
 */
function exitWhenWritten(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) exitWhenWritten(code);
  },
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
    else if (err instanceof CommandError) process.stderr.write(`berth: ${err.message}\n`);
    else process.stderr.write(`berth: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    exitWhenWritten(1);
  },
);
