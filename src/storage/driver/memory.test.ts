import { createMemoryDriver } from './memory.js';
import { runDriverSuite } from './suite/suite.js';

runDriverSuite('inmemory', async () => ({ driver: createMemoryDriver(), cleanup: async () => {} }));
