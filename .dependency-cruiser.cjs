/**
 * The dependency rules of STYLE.md §1, checked on every `npm test`.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'leaf-modules',
      comment: 'errors.ts and storage/digest.ts import nothing internal',
      severity: 'error',
      from: { path: '^src/(errors|storage/digest)\\.ts$' },
      to: { path: '^src/' },
    },
    {
      name: 'drivers-know-only-the-contract',
      comment: 'drivers import driver.ts and their SDK: no layout, Koa or RegistryError',
      severity: 'error',
      from: { path: '^src/storage/driver/(?!suite|.*\\.test\\.ts)[^/]+\\.ts$' },
      to: { path: '^src/', pathNot: '^src/storage/driver/(driver|instrument|filesystem|filesystem-discard|filesystem-io|filesystem-reader|filesystem-writer|filesystem-writers|filesystem-walk|filesystem-blocking|filesystem-shared-stat|memory|s3|s3-client|s3-limits|s3-multipart|s3-part-buffers|s3-raw-get|s3-reader|s3-writer|s3-writer-start)\\.ts$' },
    },
    {
      name: 'storage-is-not-http',
      comment: 'storage never imports http/, auth/, config/, indexdb/, koa or level (an index is injected through indexing/index-port.ts)',
      severity: 'error',
      from: { path: '^src/storage/' },
      to: { path: ['^src/(http|auth|config|cli|indexdb)/', '^src/main\\.ts$', 'node_modules/(koa|@koa|level|classic-level)/'] },
    },
    {
      name: 'indexdb-is-derived-storage',
      comment: 'indexdb/ reads storage only through the index port; it never sees HTTP, auth or the config',
      severity: 'error',
      from: { path: '^src/indexdb/', pathNot: '\\.test\\.ts$' },
      to: { path: ['^src/(http|auth|config|cli)/', '^src/main\\.ts$', '^src/storage/driver/(?!driver\\.ts)', 'node_modules/(koa|@koa)/'] },
    },
    {
      name: 'http-goes-through-the-registry',
      comment:
        'http/ imports storage only through storage/registry.ts (the Registry face and every type it needs, re-exported), ' +
        'plus the boundary types it parses requests into: storage/digest.ts (Digest) and storage/reference.ts ' +
        '(RepoName, Tag, UploadId, Reference). Never a driver, the layout, the global blobs or maintenance.',
      severity: 'error',
      from: { path: '^src/http/' },
      to: { path: ['^src/storage/', '^src/config/'], pathNot: '^src/storage/(registry|digest|reference)\\.ts$' },
    },
    {
      name: 'gc-goes-through-the-storage-api',
      comment: 'gc/ imports the storage API and metrics, never a driver or the layout (tests may build registries)',
      severity: 'error',
      from: { path: '^src/gc/', pathNot: '(\\.test\\.ts|/suite/[^/]+\\.ts)$' },
      to: { path: ['^src/storage/driver/', '^src/storage/paths\\.ts$', '^src/(http|auth|config|cli)/', 'node_modules/(koa|@koa)/'] },
    },
    {
      name: 'mirror-wraps-the-storage-face',
      comment: 'mirror/ wraps the Registry face: storage only through registry.ts (and digest.ts, reference.ts), and errors; never a driver, the layout, config, http or koa',
      severity: 'error',
      from: { path: '^src/mirror/', pathNot: '\\.test\\.ts$' },
      to: {
        path: ['^src/storage/', '^src/(http|auth|config|cli|indexdb|metrics)/', 'node_modules/(koa|@koa|level|classic-level)/'],
        pathNot: '^src/storage/(registry|digest|reference)\\.ts$',
      },
    },
    {
      name: 'check-goes-through-the-storage-api',
      comment: 'check/ (the integrity check) reads and repairs through the storage inventory: never a driver, the layout, gc/, or anything above storage',
      severity: 'error',
      from: { path: '^src/check/', pathNot: '\\.test\\.ts$' },
      to: { path: ['^src/storage/driver/', '^src/storage/paths\\.ts$', '^src/(http|auth|config|cli|gc|indexdb|notifications|coordination)/', 'node_modules/(koa|@koa|level|classic-level)/'] },
    },
    {
      name: 'only-the-composition-root-sees-config',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/(main\\.ts|cli/|config/)'] },
      to: { path: '^src/config/' },
    },
    {
      name: 'no-test-code-in-src',
      comment: 'test support inside src/ lives in a suite/ folder beside what it supports (driver/suite/, gc/suite/, config/suite/, notifications/suite/); only it and *.test.ts may import vitest',
      severity: 'error',
      from: { path: '^src/', pathNot: '(\\.test\\.ts|/suite/[^/]+\\.ts)$' },
      to: { path: 'node_modules/vitest/' },
    },
    {
      name: 'src-never-imports-test',
      comment: 'nothing in src/, its tests and suites included, imports from test/ (test/ may import src/ suites)',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
