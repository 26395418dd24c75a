/**
 * `npm run node-base-image [tag]`: makes the offline stand-in for `node:20-bookworm-slim` that the
 * container image test builds FROM (test/helpers/node-base-image.ts: a debootstrapped Debian bookworm
 * minbase with this machine's Node and npm, user `node` uid 1000) and imports it into the Docker daemon
 * that `docker` talks to (DOCKER_HOST), as `tag` (default berth-node-base:20). For machines that cannot
 * reach Docker Hub; then `docker build --build-arg NODE_IMAGE=<tag> -t berth .`. Needs root, debootstrap
 * and a Debian mirror (the one apt uses, or BERTH_DEBIAN_MIRROR).
 */
import { importNodeBase, nodeBaseRoot } from '../test/helpers/node-base-image.js';
import { run } from '../test/helpers/process.js';

const tag = process.argv[2] ?? 'berth-node-base:20';
const root = await nodeBaseRoot();
console.error(`${root.cached ? 'found' : 'made'} ${root.tar} (${root.description}) in ${Math.round(root.ms / 1000)} s`);
await importNodeBase({ docker: (args, opts) => run('docker', args, opts) }, root, tag);
console.log(tag);
