/**
 * The mirror bench's independent client: one curl process GETs every blob of a pull at once
 * (`--parallel`, one connection each), bodies to /dev/null, and reports each transfer's status and byte
 * count (`-w`), which are checked against the sizes the manifest gave. curl hashes nothing and writes
 * nothing, so the time is the servers' (and curl's start, the same for every server and for the floor).
 * Bench code only; never part of Berth.
 */
import { execFile } from 'node:child_process';
import type { PulledBlob } from '../../test/helpers/mirror-clients.js';

/** The transfer report curl prints per URL: status, bytes received, the URL. */
const WRITE_OUT = '%{http_code} %{size_download} %{url_effective}\\n';

/**
 * GETs every blob in `blobs` in parallel with one curl. @returns their sizes, in `blobs`' order
 * @throws when curl fails, or any answer is not a 200 of the manifest's size
 */
export function curlBlobs(blobs: readonly PulledBlob[]): Promise<number[]> {
  const args = ['-sS', '--parallel', '--parallel-immediate', '--parallel-max', String(Math.max(blobs.length, 1)), '-w', WRITE_OUT];
  for (const b of blobs) args.push('-o', '/dev/null', b.url);
  return new Promise((resolve, reject) => {
    execFile('curl', args, (err, stdout, stderr) => {
      if (err !== null) {
        reject(new Error(`curl: ${err.message} ${stderr}`));
        return;
      }
      const got = new Map<string, { status: string; size: number }>();
      for (const line of stdout.trim().split('\n')) {
        const [status = '', size = '', url = ''] = line.split(' ');
        got.set(url, { status, size: Number(size) });
      }
      const sizes: number[] = [];
      for (const b of blobs) {
        const g = got.get(b.url);
        if (g === undefined || g.status !== '200' || g.size !== b.size) {
          reject(new Error(`curl GET ${b.url}: ${g === undefined ? 'no report' : `answered ${g.status} with ${g.size} bytes`}, want 200 with ${b.size}`));
          return;
        }
        sizes.push(g.size);
      }
      resolve(sizes);
    });
  });
}
