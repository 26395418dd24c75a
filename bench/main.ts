/**
 * `npm run bench -- <family> [options]`: runs one scenario family of the benchmark suite against Berth
 * and docker-registry 2.8 on this machine, prints the table of medians and writes it as markdown to
 * bench/results/<family>-<date>.md. Families are listed in FAMILIES; each parses its own options and
 * answers a FamilyReport (bench/lib/report.ts), so a new family is one entry here and one module.
 */
import { runListing, parseListingArgs, LISTING_DEFAULTS } from './listing.js';
import { type FamilyReport, textTable, writeResults } from './lib/report.js';
import { registry2Version } from './lib/servers.js';

interface Family {
  readonly summary: string;
  readonly options: string;
  run(args: readonly string[], log: (line: string) => void): Promise<FamilyReport | string>;
}

const FAMILIES: Record<string, Family> = {
  listing: {
    summary: 'catalog (first page, full walk), tag list and tag page of a 10,000-repository tree; offline garbage-collect --dry-run',
    options: `--repos N (${LISTING_DEFAULTS.repos}) --tags N (${LISTING_DEFAULTS.tags}) --rounds N (${LISTING_DEFAULTS.rounds}) --gc-rounds N (${LISTING_DEFAULTS.gcRounds}) --deletes N (${LISTING_DEFAULTS.deletes})`,
    run: async (args, log) => {
      const o = parseListingArgs(args);
      return typeof o === 'string' ? o : runListing(o, log);
    },
  },
};

function usage(): string {
  return [
    'usage: npm run bench -- <family> [options]',
    '',
    'families:',
    ...Object.entries(FAMILIES).map(([name, f]) => `  ${name}: ${f.summary}\n    options: ${f.options}`),
    '',
  ].join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const family = FAMILIES[name];
  if (family === undefined) {
    process.stderr.write(`unknown family ${name}\n${usage()}`);
    return 2;
  }
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const version = await registry2Version();
  const report = await family.run(args, log);
  if (typeof report === 'string') {
    process.stderr.write(`${report}\n${usage()}`);
    return 2;
  }
  const file = await writeResults(report, [`registry:2: ${version}`]);
  process.stdout.write(`\n${report.title}\n\n${textTable(report.rows)}\n\n`);
  for (const row of report.rows) if (row.note !== undefined) process.stdout.write(`* ${row.scenario}: ${row.note}\n`);
  process.stdout.write(`\nwritten to ${file}\n`);
  return 0;
}

// An interrupted run exits through process.exit, whose hooks stop every child by its PID and remove
// the temporary directories (bench/lib/proc.ts).
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
