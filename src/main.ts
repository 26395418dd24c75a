#!/usr/bin/env node
/**
 * The `berth` command line: `berth serve [config.yml]`. Errors in the configuration print one line
 * and exit 1; a bad command line prints the usage and exits 2.
 */
import { ConfigError } from './config/raw.js';
import { serve } from './cli/serve.js';

const USAGE = `usage: berth <command> [args]

commands:
  serve [config.yml]   serve the registry (config file, else REGISTRY_CONFIGURATION_PATH,
                       else the built-in development config: :5000, ./data, delete enabled)
  help                 show this text
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'serve': {
      if (args.length > 1) break;
      const serving = await serve(args[0], process.env);
      const shutdown = (): void => {
        void serving.stop().then(() => process.exit(0));
      };
      process.once('SIGTERM', shutdown);
      process.once('SIGINT', shutdown);
      return -1; // keep running
    }
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return 0;
    default:
      break;
  }
  process.stderr.write(USAGE);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
    else process.stderr.write(`berth: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
