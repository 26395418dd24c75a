/**
 * The uploads whose request bodies are being taken right now, counted once for the modules that adjust
 * to them: young-garbage.ts collects more seldom per byte while several run, and upload-pacing.ts ticks
 * only while one runs. withRequestBody (body.ts) counts each upload from its start until it settles.
 */

/** What a module does when the first upload starts (none ran before) and when the last one ends. */
export interface UploadHooks {
  firstStarted(): void;
  lastEnded(): void;
}

let running = 0;
const hooks: UploadHooks[] = [];

/** Uploads running now. */
export function uploadsRunning(): number {
  return running;
}

/** Calls `h` from now on whenever the count of uploads running leaves zero or comes back to it. */
export function onUploads(h: UploadHooks): void {
  hooks.push(h);
  if (running > 0) h.firstStarted();
}

/** Counts an upload as running until the function returned is called (once; later calls do nothing). */
export function uploadStarted(): () => void {
  running++;
  if (running === 1) for (const h of hooks) h.firstStarted();
  let counted = true;
  return () => {
    if (!counted) return;
    counted = false;
    running--;
    if (running === 0) for (const h of hooks) h.lastEnded();
  };
}
