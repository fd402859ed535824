// Headless Chromium (Debian's package, `bash scripts/provision.sh chromium`) driven with
// playwright-core, which never downloads a browser of its own. The machine's network is closed, so
// everything that would call out (component updates, sync, background requests, QUIC) is off, and
// each browser gets a fresh profile: nothing carries over between tests or runs.
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Where the UI tests put their screenshots: gitignored, under the repository. */
export const SCREENSHOT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test-artifacts', 'mlflow-ui');

// Playwright adds --headless (headless: true) and --user-data-dir (launchPersistentContext) itself.
const FLAGS = [
  '--no-sandbox', // root in CI: Chromium's sandbox refuses to run as root
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Saves a full-page screenshot as SCREENSHOT_DIR/<name>.png and returns its path. */
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

export async function openBrowser(options: { width?: number; height?: number } = {}): Promise<Browser> {
  try {
    accessSync(CHROMIUM, constants.X_OK);
  } catch {
    const ci = process.env.CI === 'true' ? ' CI=true: a missing service is a failure, not a skip.' : '';
    throw new Error(`Chromium is not installed at ${CHROMIUM}: run \`bash scripts/provision.sh chromium\` (Debian's chromium package).${ci}`);
  }
  const profile = mkdtempSync(join(tmpdir(), 'runtel-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: options.width ?? 1600, height: options.height ?? 1000 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return {
    context,
    page,
    async screenshot(name) {
      const path = join(SCREENSHOT_DIR, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
