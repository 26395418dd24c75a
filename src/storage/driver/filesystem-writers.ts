/**
 * Who may have left temporary files in a filesystem tree (issue #19): a record per writing process.
 *
 * A temporary file (`.<name>.<16 hex>.tmp`, filesystem.ts putContent) outlives its write only when the
 * process dies between creating it and renaming it (kill -9, a crash, a power loss), or when its
 * removal after a failed write fails too. Finding such files means listing every folder of the tree
 * (about 250,000 on a 10,000-repository tree): the collector does that only when a process may have
 * left one since the tree was last looked through, which these records tell.
 *
 * Before its first temporary file, a driver writes a record `<pid>-<random>.json` into its records
 * folder (host name, boot id, pid and the process's start time from /proc) and syncs it and the folder,
 * so the record is on disk before any temporary file can be. A multi-step write (a tag's index link
 * then its current link) is held the same way (`during`). When the process exits with nothing in
 * flight, and no temporary file was left behind by a failed removal, the record is removed; otherwise
 * (kill -9, a crash, an exit in the middle of a write) it stays, and the collector scans the tree.
 *
 * A record is judged (`writers`): `running` (its process is alive: same host, same boot, a process with
 * that pid and start time), `gone` (same host, and a reboot since or no such process: whatever it was
 * writing may have been cut short), or `unknown` (another host sharing the tree: nothing here can say).
 * Only a `gone` record may be removed, by a collector that has looked through the whole tree since.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { WriterRecord } from './driver.js';

/** What a record holds. */
interface Identity {
  readonly host: string;
  readonly boot: string;
  readonly pid: number;
  /** The process's start time (clock ticks since boot, /proc/<pid>/stat field 22): tells a reused pid. */
  readonly start: string;
  /** A temporary file could not be removed after a failed write: the process left one while alive. */
  readonly dirty?: true;
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

/** This machine's boot id ('' when /proc does not say: then every record is judged `unknown`). */
const bootId = (): string => readOr('/proc/sys/kernel/random/boot_id', '').trim();

/** The start time of process `pid`, or undefined when there is no such process. */
function startOf(pid: number): string | undefined {
  const stat = readOr(`/proc/${pid}/stat`, '');
  // Fields after the command name (which may hold spaces, inside parentheses): state is field 3.
  return stat === '' ? undefined : stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

let self: Identity | undefined;
function identity(): Identity {
  self ??= { host: hostname(), boot: bootId(), pid: process.pid, start: startOf(process.pid) ?? '' };
  return self;
}

/** Every open record of this process, for the exit hook. */
const open = new Set<WriteRecords>();
let hooked = false;

/** The records of one driver's writes (one record file per driver instance and process). */
export class WriteRecords {
  private file: string | undefined;
  private inFlight = 0;
  private dirty = false;

  /** `dir`: the records folder (absolute), outside the registry tree. */
  constructor(private readonly dir: string) {}

  /** A write that may leave a temporary file begins: the record is on disk before this returns. */
  begin(): void {
    if (this.file === undefined) this.create();
    this.inFlight += 1;
  }

  /** That write is over; `leftBehind`: its temporary file could not be removed. */
  end(leftBehind = false): void {
    this.inFlight -= 1;
    if (leftBehind && !this.dirty && this.file !== undefined) {
      this.dirty = true;
      writeRecord(this.file, { ...identity(), dirty: true });
    }
  }

  /** At exit: removes the record when nothing is in flight and nothing was left behind. */
  exit(): void {
    if (this.file !== undefined && this.inFlight === 0 && !this.dirty) rmSync(this.file, { force: true });
  }

  /** Every record in the folder, judged. */
  list(): WriterRecord[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names.filter((n) => n.endsWith('.json')).map((name) => judge(join(this.dir, name), name));
  }

  /** Removes a record `list` judged `gone`. */
  forget(name: string): void {
    rmSync(join(this.dir, name), { force: true });
  }

  private create(): void {
    mkdirSync(this.dir, { recursive: true });
    const file = join(this.dir, `${process.pid}-${randomBytes(6).toString('hex')}.json`);
    writeRecord(file, identity());
    const fd = openSync(this.dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.file = file;
    open.add(this);
    if (!hooked) {
      hooked = true;
      process.on('exit', () => {
        for (const r of open) r.exit();
      });
    }
  }
}

/** Writes a record whole (a reader never sees part of one): a `.part` file synced, then renamed. */
function writeRecord(file: string, id: Identity): void {
  const part = `${file}.part`;
  const fd = openSync(part, 'w');
  try {
    writeSync(fd, `${JSON.stringify(id)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(part, file);
}

/** What a record says of its process now. A record that cannot be read was cut short: `gone`, dirty. */
function judge(path: string, name: string): WriterRecord {
  let id: Partial<Identity>;
  try {
    id = JSON.parse(readFileSync(path, 'utf8')) as Partial<Identity>;
  } catch {
    return { name, state: 'gone', dirty: true };
  }
  const me = identity();
  const dirty = id.dirty === true;
  if (id.host !== me.host || me.boot === '') return { name, state: 'unknown', dirty };
  const alive = id.boot === me.boot && typeof id.pid === 'number' && startOf(id.pid) === id.start;
  return { name, state: alive ? 'running' : 'gone', dirty };
}
