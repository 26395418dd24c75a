// A preload for hand-run memory probes (`node --import bench/lib/memory-sampler.mjs server.js …`):
// every 20 ms it appends process.memoryUsage() (MiB) to the CSV file $MEMSAMPLE_FILE, 25 lines at a
// time. Without that variable it does nothing. Not used by `npm run bench`.
import { appendFileSync, writeFileSync } from 'node:fs';

const file = process.env.MEMSAMPLE_FILE;
if (file) {
  const MiB = 1024 * 1024;
  writeFileSync(file, 't,rss,heapTotal,heapUsed,external,arrayBuffers\n');
  let lines = [];
  setInterval(() => {
    const m = process.memoryUsage();
    lines.push([Date.now(), m.rss, m.heapTotal, m.heapUsed, m.external, m.arrayBuffers].map((v, i) => (i === 0 ? v : (v / MiB).toFixed(1))).join(','));
    if (lines.length >= 25) {
      appendFileSync(file, `${lines.join('\n')}\n`);
      lines = [];
    }
  }, 20).unref();
}
