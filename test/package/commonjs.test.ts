// CommonJS consumers (issue 14, item 7), in fresh projects with runtel installed from the packed
// tarball: a plain CommonJS script, and a TypeScript project with `module: nodenext` compiled to
// CommonJS. runtel is an ES module; `require('runtel')` loads it on Node.js ≥ 20.19 (require of ES
// modules) — the same module instance `import` gets — and on a Node.js that cannot (simulated with
// --no-experimental-require-module) fails with "ESM only: use import() / "type": "module"".

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bin, consumerProject } from './consumer.js';

function node(cwd: string, ...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, RUNTEL_BACKENDS: 'memory' };
  delete env.NODE_OPTIONS;
  const result = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', env, timeout: 120_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const CJS_APP = `
const runtel = require('runtel');
const { InMemoryLogger, withRun, activeRun } = runtel;

async function main() {
  const logger = new InMemoryLogger();
  await withRun(logger, { name: 'cjs', experiment: 'commonjs' }, async (run) => {
    run.logMetrics({ loss: 0.5 });
    if (activeRun() !== run) throw new Error('not the active run');
  });
  const esm = await import('runtel');
  console.log(JSON.stringify({
    status: logger.getRun('cjs').status,
    loss: logger.getRun('cjs').metrics.loss[0].value,
    sameModule: esm.InMemoryLogger === InMemoryLogger,
  }));
}
main().catch((error) => { console.error(error); process.exit(1); });
`;

const TS_APP = `
import { InMemoryLogger, withRun } from 'runtel';
import type { Run } from 'runtel';

function fit(run: Run): void {
  for (let step = 0; step < 3; step++) run.logMetrics({ loss: 1 / (step + 1) }, { step });
}

async function main(): Promise<void> {
  const logger = new InMemoryLogger();
  await withRun(logger, { name: 'ts-cjs', experiment: 'commonjs' }, fit);
  const record = logger.getRun('ts-cjs')!;
  console.log(JSON.stringify({ status: record.status, steps: record.metrics.loss!.map((s) => s.step) }));
}
void main();
`;

describe('CommonJS consumers of the packed package', () => {
  let project: string;
  beforeAll(async () => {
    project = await consumerProject({ type: 'commonjs', deps: ['typescript', '@types/node'] });
  });
  afterAll(() => {
    if (project !== undefined) rmSync(project, { recursive: true, force: true });
  });

  it("require('runtel') in a plain CommonJS script loads the same module import() does", () => {
    const dir = join(project, 'plain');
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'plain', private: true, type: 'commonjs' }));
    writeFileSync(join(dir, 'app.js'), CJS_APP);
    const result = node(dir, 'app.js');
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ status: 'success', loss: 0.5, sameModule: true });
    expect(result.stderr).not.toMatch(/ExperimentalWarning|Error/);
  });

  it('on a Node.js that cannot require() ES modules, require says: ESM only, use import() / "type": "module"', () => {
    const dir = join(project, 'old-node');
    mkdirSync(dir);
    writeFileSync(join(dir, 'app.cjs'), "require('runtel');\n");
    const result = node(dir, '--no-experimental-require-module', 'app.cjs');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Error: runtel is ESM only: use import() / "type": "module"');
    expect(result.stderr).toContain(`Node.js ${process.version} cannot require() an ES module`);
    expect(result.stderr).not.toContain('ERR_PACKAGE_PATH_NOT_EXPORTED');
  });

  it('a TypeScript project with module nodenext compiled to CommonJS type-checks, emits require("runtel") and runs', () => {
    const dir = join(project, 'ts-cjs');
    mkdirSync(join(dir, 'src'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'ts-cjs', private: true }));
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, types: ['node'], outDir: 'dist', rootDir: 'src' } }),
    );
    writeFileSync(join(dir, 'src', 'index.ts'), TS_APP);
    const tsc = node(dir, bin(project, 'tsc'), '-p', '.');
    expect(tsc.code, tsc.stdout + tsc.stderr).toBe(0);
    expect(readFileSync(join(dir, 'dist', 'index.js'), 'utf8')).toContain('require("runtel")');
    const result = node(dir, join('dist', 'index.js'));
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ status: 'success', steps: [0, 1, 2] });
  });
});
