/**
 * Calls on a driver where a missing path is an answer rather than a failure: the PATH_NOT_FOUND
 * DriverError becomes undefined or false; every other error is thrown as it is.
 */
import { type DeleteOptions, type StorageDriver, isDriverError } from './driver.js';

/** Runs `op` and answers undefined instead of throwing when a path was not found. */
export async function unlessNotFound<T>(op: () => Promise<T>): Promise<T | undefined> {
  try {
    return await op();
  } catch (err) {
    if (isDriverError(err, 'PATH_NOT_FOUND')) return undefined;
    throw err;
  }
}

/** Deletes `path` (recursively); answers false when there was nothing to delete. */
export async function deleteIfExists(driver: StorageDriver, path: string, o?: DeleteOptions): Promise<boolean> {
  try {
    await driver.delete(path, o);
    return true;
  } catch (err) {
    if (isDriverError(err, 'PATH_NOT_FOUND')) return false;
    throw err;
  }
}
