/**
 * Where the built-in issuer keeps a generated key when storage is not a filesystem root: an object in
 * the storage itself (`/berth/token-signing-key.pem`, outside `docker/registry/v2`, so the registry:2
 * layout is untouched), created with the driver's conditional write so that replicas starting
 * together over one bucket agree on one key (src/auth/signing-key.ts).
 */
import type { KeyStore } from '../auth/signing-key.js';
import { type StorageDriver, isDriverError } from '../storage/driver/driver.js';
import { paths } from '../storage/paths.js';

/** The key store in `driver`, or undefined when the driver has no conditional write (then the key stays in memory). */
export function driverKeyStore(driver: StorageDriver): KeyStore | undefined {
  const create = driver.createContent?.bind(driver);
  if (create === undefined) return undefined;
  const path = paths.signingKey;
  return {
    where: `${driver.name} ${path}`,
    async read() {
      try {
        return (await driver.getContent(path)).toString('utf8');
      } catch (err) {
        if (isDriverError(err, 'PATH_NOT_FOUND')) return undefined;
        throw err;
      }
    },
    createIfAbsent: (pem) => create(path, Buffer.from(pem, 'utf8')),
  };
}
