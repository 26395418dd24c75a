// A preload for hand-run memory probes (`node --import bench/lib/memory-sampler.mjs server.js …`):
// every 20 ms it appends process.memoryUsage() (MiB) to the CSV file $MEMSAMPLE_FILE, 25 lines at a
// time. Without that variable it does nothing. Not used by `npm run bench`.
import { appendFileSync, writeFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

const file = process.env.MEMSAMPLE_FILE;
if (file) {
  const MiB = 1024 * 1024;
  writeFileSync(file, 't,rss,heapTotal,heapUsed,external,arrayBuffers,newSpace,oldSpace,codeSpace,largeObjects\n');
  let lines = [];
  setInterval(() => {
    const m = process.memoryUsage();
    // Resident (physical) size of V8's main spaces.
    const space = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, s.physical_space_size]));
    const spaces = ['new_space', 'old_space', 'code_space', 'large_object_space'].map((n) => space[n] ?? 0);
    lines.push([Date.now(), m.rss, m.heapTotal, m.heapUsed, m.external, m.arrayBuffers, ...spaces].map((v, i) => (i === 0 ? v : (v / MiB).toFixed(1))).join(','));
    if (lines.length >= 25) {
      appendFileSync(file, `${lines.join('\n')}\n`);
      lines = [];
    }
  }, 20).unref();
}
