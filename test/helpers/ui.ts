/**
 * The web UI in tests: `buildTestUi()` builds web/ with the real build script (scripts/build-ui.ts)
 * into a temporary directory and loads it as the server does, so a test always serves the source as
 * it is (and two test files never write one directory at once). `launchChromium()` starts Debian's
 * chromium headless through playwright-core (nothing downloaded; ../shared/ENVIRONMENT.md), and
 * `chromiumAvailable` is what `describeWithTool` takes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { buildUi } from '../../scripts/build-ui.js';
import { type UiAssets, loadUiAssets } from '../../src/http/ui/assets.js';
import { type ToolAvailability, toolAvailable } from './process.js';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export interface TestUi {
  readonly assets: UiAssets;
  /** The files the build wrote, relative to its directory (index.html first). */
  readonly files: readonly string[];
  close(): Promise<void>;
}

/** Builds the UI into a fresh temporary directory and loads it. */
export async function buildTestUi(): Promise<TestUi> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-ui-'));
  const files = await buildUi(dir);
  const assets = await loadUiAssets(dir);
  if (assets === undefined) throw new Error(`the UI build in ${dir} has no index.html`);
  return { assets, files, close: () => rm(dir, { recursive: true, force: true }) };
}

/** Debian's chromium, which playwright-core drives (package `chromium`). */
export function chromiumAvailable(): ToolAvailability {
  return toolAvailable('chromium');
}

/** Headless chromium, no sandbox (tests run as root), no background traffic. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage'],
  });
}
