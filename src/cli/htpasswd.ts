/**
 * `berth htpasswd [--cost N] USER`: one line for an htpasswd file (`auth.htpasswd.path`, or the
 * built-in issuer's users), `USER:<bcrypt hash>`, as `htpasswd -nB USER` prints it, without needing
 * Apache's tools. The password is read from stdin when stdin is not a terminal (one line; the newline
 * is not part of it), else asked for twice on the terminal without echo. bcrypt through bcryptjs
 * (`$2b$`), which registry:2 and Berth both accept; cost 10 unless `--cost` (4 to 31).
 */
import { hash } from 'bcryptjs';

const USAGE = 'usage: berth htpasswd [--cost N] USER   (password from stdin, or asked for on a terminal)\n';

/** Where the command reads and writes; a test passes its own. */
export interface HtpasswdIo {
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

interface HtpasswdCommand {
  readonly user: string;
  readonly cost: number;
}

/** Parses the arguments after `htpasswd`; answers an error message for a bad command line. */
export function parseHtpasswdArgs(args: readonly string[]): HtpasswdCommand | string {
  let cost = 10;
  const users: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--cost') {
      const n = Number(args[(i += 1)]);
      if (!Number.isInteger(n) || n < 4 || n > 31) return '--cost takes a whole number from 4 to 31';
      cost = n;
    } else if (arg.startsWith('-')) {
      return `unknown flag ${arg}`;
    } else {
      users.push(arg);
    }
  }
  if (users.length !== 1) return 'name exactly one user';
  const user = users[0] ?? '';
  if (user === '' || user.includes(':') || /[\s\r\n]/.test(user)) return 'a user name cannot be empty or hold ":" or white space';
  return { user, cost };
}

/** Runs the command; answers the exit code (0, 1 on an unusable password, 2 on a bad command line). */
export async function htpasswdCommand(args: readonly string[], io: HtpasswdIo = processIo()): Promise<number> {
  const cmd = parseHtpasswdArgs(args);
  if (typeof cmd === 'string') {
    io.stderr(`berth htpasswd: ${cmd}\n${USAGE}`);
    return 2;
  }
  const password = io.stdin.isTTY === true ? await askTwice(io) : await firstLine(io.stdin);
  if (password === undefined || password === '') {
    io.stderr('berth htpasswd: no password given (the passwords differ, or stdin was empty)\n');
    return 1;
  }
  if (Buffer.byteLength(password) > 72) {
    io.stderr('berth htpasswd: bcrypt uses only the first 72 bytes of a password; use a shorter one\n');
    return 1;
  }
  io.stdout(`${cmd.user}:${await hash(password, cmd.cost)}\n`);
  return 0;
}

function processIo(): HtpasswdIo {
  return { stdin: process.stdin, stdout: (t) => void process.stdout.write(t), stderr: (t) => void process.stderr.write(t) };
}

/** The whole of stdin up to its first line break (or its end). */
async function firstLine(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

/** Asks on the terminal twice, without echo; undefined when the two answers differ. */
async function askTwice(io: HtpasswdIo): Promise<string | undefined> {
  const first = await askHidden(io, 'New password: ');
  const second = await askHidden(io, 'Re-type new password: ');
  return first === second ? first : undefined;
}

function askHidden(io: HtpasswdIo, prompt: string): Promise<string> {
  io.stderr(prompt);
  io.stdin.setRawMode?.(true);
  io.stdin.resume();
  return new Promise((resolve) => {
    let typed = '';
    const onData = (data: Buffer | string): void => {
      for (const ch of data.toString()) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          io.stdin.removeListener('data', onData);
          io.stdin.setRawMode?.(false);
          io.stdin.pause();
          io.stderr('\n');
          resolve(typed);
          return;
        }
        if (ch === '\u0003') process.exit(130); // Ctrl-C in raw mode
        typed = ch === '\u007f' ? typed.slice(0, -1) : typed + ch;
      }
    };
    io.stdin.on('data', onData);
  });
}
