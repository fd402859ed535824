// Fresh consumer projects, as a new user makes them: runtel installed from the tarball `npm pack` makes
// of this checkout (the package npm would fetch), next to the other packages a test names, pinned to
// the versions in this repository's package-lock.json.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

let packed: Promise<string> | undefined;

/** The tarball of this checkout (`npm pack`, once per test file). Needs `npm run build` first. */
export function packRuntel(): Promise<string> {
  packed ??= (async () => {
    if (!existsSync(join(REPO, 'dist', 'index.js'))) throw new Error('dist/ is missing: run npm run build first');
    const dest = mkdtempSync(join(tmpdir(), 'runtel-pack-'));
    // --ignore-scripts: dist/ is built already (npm test builds first); `prepare` would rebuild it under running tests.
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dest], { cwd: REPO, maxBuffer: 16 * 1024 * 1024 });
    const [info] = JSON.parse(stdout) as Array<{ filename: string }>;
    return join(dest, info!.filename);
  })();
  return packed;
}

/** `name@version` as this repository's lockfile has it (the versions the test suite itself uses). */
export function pinned(name: string): string {
  const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
  const version = lock.packages[`node_modules/${name}`]?.version;
  if (version === undefined) throw new Error(`${name} is not in package-lock.json`);
  return `${name}@${version}`;
}

/**
 * A new project folder (`package.json` with `type`) with runtel and `deps` installed by `npm install`.
 * Returns its path. Sub-folders with their own package.json share its node_modules.
 */
export async function consumerProject(options: { type?: 'module' | 'commonjs'; deps?: string[] } = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'runtel-consumer-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: options.type ?? 'module' }, null, 2));
  const tarball = await packRuntel();
  await npmInstall(dir, [tarball, ...(options.deps ?? []).map(pinned)]);
  return dir;
}

export async function npmInstall(dir: string, specs: string[]): Promise<void> {
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...specs], {
    cwd: dir,
    maxBuffer: 16 * 1024 * 1024,
    timeout: 600_000,
  });
}

/** A bin of the project's node_modules (so that nothing is fetched the way an unknown `npx` name would be). */
export function bin(project: string, name: string): string {
  return join(project, 'node_modules', '.bin', name);
}
