// The README's code blocks, run as written (issue 14: "a doc that lies fails CI"), on the Node.js
// running the tests (Node 20 in CI).
//
// How each block is exercised:
// - "Quick start" and "Callbacks and experiments" are what a new user does in their own project, so
//   they run in order in a fresh consumer project (test/package/consumer.ts). A `js` block is a
//   plain JavaScript file named by its first line (`// train.mjs`) and a `ts` block a TypeScript file
//   (`// train.ts`); they are written there and run by the shell lines that follow them, as the README
//   says (`node train.mjs`, `npx tsc --noEmit && npx tsx train.ts`). A `json` block there is the
//   project's tsconfig.json. Shell blocks run line by line with bash, except that `npm install` gets
//   the tarball `npm pack` makes of this checkout for `runtel` (it is the package npm would fetch) and
//   the lockfile's version for every other package (the versions this suite is tested with).
//   Every file must be run (and every `.ts` file type-checked) by a line after it, every line must
//   succeed, and each line's output is checked below.
// - "The two commands" and "View runs in Jaeger and Grafana" run in this checkout. `npm ci && npm test`
//   is what CI itself runs (.ci/run, checked here to be that very line). In `npm ci && npm run demo`,
//   `npm ci` is the step CI ran for this checkout before the tests (running it again would replace
//   node_modules under the running suite), so the test runs `npm run demo`. The other lines run as
//   written, with RUNTEL_DIR pointing at a temporary store; the OpenTelemetry block exports to a
//   recording OTLP receiver on localhost:4318, the port it names.
// - A block in any other section fails this test until it is given a runner here.
// - docs/*.md blocks marked `<!-- runnable -->` are `js` files like the Quick start's, run with node in
//   the consumer project.
//
// The README's bad-input table is checked row by row at the end.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { InMemoryLogger, listRuns } from '../../src/index.js';
import type { RunRecord } from '../../src/index.js';
import { codeBlocks, tableRows } from './markdown.js';
import type { CodeBlock } from './markdown.js';
import { REPO, consumerProject, npmInstall, packRuntel, pinned } from '../package/consumer.js';

const README = join(REPO, 'README.md');
const blocks = codeBlocks(README);

const CHECKOUT_SECTIONS = new Set(['The two commands', 'View runs in Jaeger and Grafana']);
const CONSUMER_SECTIONS = new Set(['Quick start', 'Callbacks and experiments']);

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of a user's shell: none of this suite's settings, no backend configured. */
function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(RUNTEL_|OTEL_|MLFLOW_|WANDB_|VITEST|NODE_OPTIONS$|npm_)/.test(key)) continue;
    env[key] = value;
  }
  env.PATH = `${dirname(process.execPath)}:${env.PATH ?? ''}`;
  env.NO_COLOR = '1';
  return { ...env, ...extra };
}

function bash(line: string, cwd: string, env: NodeJS.ProcessEnv): Result {
  const result = spawnSync('bash', ['-euo', 'pipefail', '-c', line], { cwd, env, encoding: 'utf8', timeout: 300_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function bashAsync(line: string, cwd: string, env: NodeJS.ProcessEnv): Promise<Result> {
  return new Promise((resolve) => {
    execFile('bash', ['-euo', 'pipefail', '-c', line], { cwd, env, encoding: 'utf8', timeout: 300_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

/** The commands of a shell block: one per line, comments and blank lines left out. */
function commands(block: CodeBlock): string[] {
  return block.code
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

function storeRuns(dir: string): RunRecord[] {
  return listRuns(dir).map((r) => r.record);
}

function byName(runs: RunRecord[], name: string): RunRecord {
  const run = runs.find((r) => r.name === name);
  if (run === undefined) throw new Error(`no run ${name} among ${runs.map((r) => r.name).join(', ')}`);
  return run;
}

describe('README code blocks', () => {
  it('every block is in a section this test knows how to run', () => {
    const unknown = blocks.filter((b) => !CHECKOUT_SECTIONS.has(b.section) && !CONSUMER_SECTIONS.has(b.section));
    expect(unknown.map((b) => `README.md:${b.line} (${b.section}, ${b.lang})`)).toEqual([]);
    // The languages the fences claim, and files named to match them.
    for (const block of blocks) {
      expect(['sh', 'js', 'ts', 'json'], `README.md:${block.line}`).toContain(block.lang);
      if (block.lang === 'js') expect(block.code.split('\n')[0], `README.md:${block.line}`).toMatch(/^\/\/ [\w-]+\.(mjs|cjs|js)$/);
      if (block.lang === 'ts') expect(block.code.split('\n')[0], `README.md:${block.line}`).toMatch(/^\/\/ [\w-]+\.(ts|mts|cts)$/);
    }
  });

  describe('in a new project, as a new user (Quick start, Callbacks and experiments)', () => {
    let project: string;
    const ran: Array<{ line: string; result: Result }> = [];
    const files = new Map<string, { block: CodeBlock; runBy?: string; checkedBy?: string }>();

    beforeAll(async () => {
      project = await consumerProject({ type: 'module' });
      for (const block of blocks.filter((b) => CONSUMER_SECTIONS.has(b.section))) {
        if (block.lang === 'js' || block.lang === 'ts') {
          const name = block.code.split('\n')[0]!.slice(3);
          writeFileSync(join(project, name), block.code);
          files.set(name, { block });
          continue;
        }
        if (block.lang === 'json') {
          if (!('compilerOptions' in (JSON.parse(block.code) as object))) throw new Error(`README.md:${block.line}: a json block here must be a tsconfig.json`);
          writeFileSync(join(project, 'tsconfig.json'), block.code);
          continue;
        }
        for (const line of commands(block)) {
          let result: Result;
          const install = /^npm install( .*)$/.exec(line);
          if (install !== null) {
            const args = install[1]!.trim().split(/\s+/);
            const tarball = await packRuntel();
            const specs = args.map((arg) => (arg.startsWith('-') ? arg : arg === 'runtel' ? tarball : pinned(arg)));
            await npmInstall(project, specs);
            result = { code: 0, stdout: '', stderr: '' };
          } else {
            result = bash(line, project, userEnv());
          }
          ran.push({ line, result });
          for (const [name, file] of files) {
            if (file.runBy === undefined && new RegExp(`(^|\\s)${name.replace('.', '\\.')}(\\s|$)`).test(line)) file.runBy = line;
            if (file.checkedBy === undefined && /(^|\s)(npx )?tsc( |$)/.test(line)) file.checkedBy = line;
          }
          if (result.code !== 0) throw new Error(`README line "${line}" exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
        }
      }
    }, 900_000);
    afterAll(() => {
      if (project !== undefined) rmSync(project, { recursive: true, force: true });
    });

    /** The output of the n-th run (1-based) of a README line. */
    const output = (line: string, n = 1): Result => {
      const found = ran.filter((r) => r.line === line)[n - 1];
      if (found === undefined) throw new Error(`the README no longer runs "${line}" ${n > 1 ? `${n} times` : ''}`);
      return found.result;
    };

    it('runs every js and ts block, type-checks every ts block, and every line succeeds', () => {
      expect([...files.keys()].sort()).toEqual(['baseline.mjs', 'fit.mjs', 'search.mjs', 'train.mjs', 'train.ts']);
      for (const [name, file] of files) {
        expect(file.runBy, `${name} (README.md:${file.block.line}) is never run`).toBeDefined();
        if (/\.(c|m)?ts$/.test(name)) expect(file.checkedBy, `${name} is never type-checked`).toBeDefined();
      }
      // Everything the README runs, so that a new line gets a check here.
      expect(ran.map((r) => r.line)).toEqual([
        'npm install runtel',
        'node train.mjs',
        'npx runtel ls -e iris',
        'node baseline.mjs',
        'npm install --save-dev typescript tsx @types/node',
        'npx tsc --noEmit && npx tsx train.ts',
        'npx runtel ls -e iris',
        'npm install @tensorflow/tfjs',
        'node fit.mjs',
        'npx runtel show xor --no-charts',
        'node search.mjs',
        'npx runtel ls -e lr-search',
      ]);
    });

    it('train.mjs (plain Node ESM, withRun): the search and its trials, all in iris', () => {
      const runs = storeRuns(join(project, 'runtel-runs'));
      const search = byName(runs, 'search');
      for (const name of ['lr=0.01', 'lr=0.1']) {
        const trial = byName(runs, name);
        expect(trial).toMatchObject({ parentId: search.id, experiment: 'iris', status: 'success' });
        expect(trial.metrics['train/loss']!.map((s) => s.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        expect(trial.artifacts.map((a) => a.name)).toEqual(['models/softmax']);
      }
      const ls = output('npx runtel ls -e iris').stdout;
      expect(ls).toMatch(/│ search +│ [0-9a-f]{8} │ iris +│ success/);
      expect(ls).toMatch(/│ ├─ lr=0\.01 +│ [0-9a-f]{8} │ iris +│ success/);
      expect(ls).toMatch(/│ └─ lr=0\.1 +│ [0-9a-f]{8} │ iris +│ success/);
    });

    it('baseline.mjs (startRun): the nested run finds the active run and lands in its experiment', () => {
      const runs = storeRuns(join(project, 'runtel-runs'));
      const baseline = byName(runs, 'baseline');
      expect(baseline.status).toBe('success');
      expect(byName(runs, 'eval')).toMatchObject({ parentId: baseline.id, experiment: 'iris', status: 'success' });
      expect(output('node baseline.mjs').stderr).toMatch(/▶ eval started \(id [0-9a-f]{8}, experiment iris, parent [0-9a-f]{8}\)/);
    });

    it('train.ts (await using): the scope ends success; the block that throws is failed because it finishes the run itself', () => {
      const runs = storeRuns(join(project, 'runtel-runs'));
      expect(byName(runs, 'scoped').status).toBe('success');
      const diverging = byName(runs, 'diverging');
      expect(diverging.status).toBe('failed');
      expect(diverging.error).toMatchObject({ type: 'Error', message: 'loss is NaN at epoch 0' });
      expect(output('npx tsc --noEmit && npx tsx train.ts').stderr).toContain('diverging: loss is NaN at epoch 0');
      const ls = output('npx runtel ls -e iris', 2).stdout;
      expect(ls).toMatch(/│ scoped +│ [0-9a-f]{8} │ iris +│ success/);
      expect(ls).toMatch(/│ diverging +│ [0-9a-f]{8} │ iris +│ failed/);
    });

    it('the await using claim: without finish("failed"), a block that throws ends the run success', async () => {
      const logger = new InMemoryLogger();
      const attempt = async (): Promise<void> => {
        await using _run = logger.startRun({ name: 'throws-inside', activate: false });
        throw new Error('boom');
      };
      await expect(attempt()).rejects.toThrow('boom');
      expect(logger.getRun('throws-inside')!.status).toBe('success');
    });

    it('fit.mjs (tfjs): tfjsCallbacks next to earlyStopping, and a second fit continues the steps', () => {
      const xor = byName(storeRuns(join(project, 'runtel-runs')), 'xor');
      expect(xor.status).toBe('success');
      const steps = xor.metrics.loss!.map((s) => s.step);
      expect(steps).toEqual(Array.from({ length: steps.length }, (_, i) => i));
      expect(steps.length).toBeGreaterThan(10);
      const show = output('npx runtel show xor --no-charts').stdout;
      expect(show.split('\n')[0]).toBe('xor  success');
      expect(show).toMatch(new RegExp(`\\n {2}loss +\\S+ +step ${steps.length - 1}, ${steps.length} points`));
      expect(show).toMatch(/\n {2}batch\/loss +\S+ +step \d+/);
    });

    it('search.mjs (Experiment): the trial function gets params, its run and info; the summary names the best', () => {
      expect(output('node search.mjs').stdout).toBe('best: lr-search-trial-2 (val/accuracy 0.902), 2 of 6 failed\n');
      const runs = storeRuns(join(project, 'runtel-runs')).filter((r) => r.experiment === 'lr-search');
      expect(runs).toHaveLength(7);
      const parent = byName(runs, 'lr-search');
      expect(parent.tags.best_trial_name).toBe('lr-search-trial-2');
      expect(byName(runs, 'lr-search-trial-4')).toMatchObject({ status: 'failed', parentId: parent.id });
      expect(output('npx runtel ls -e lr-search').stdout).toContain('1 top-level run and 6 child runs');
    });

    it('docs examples marked runnable run with node in the same project', () => {
      const docs = readdirSync(join(REPO, 'docs')).filter((f) => f.endsWith('.md'));
      for (const doc of docs) {
        for (const block of codeBlocks(join(REPO, 'docs', doc)).filter((b) => b.runnable)) {
          expect(block.lang, `docs/${doc}:${block.line}`).toBe('js');
          const name = /^\/\/ ([\w-]+\.m?js)$/.exec(block.code.split('\n')[0]!)?.[1];
          expect(name, `docs/${doc}:${block.line} must start with // <file>.mjs`).toBeDefined();
          writeFileSync(join(project, name!), block.code);
          const result = bash(`node ${name!}`, project, userEnv());
          expect(result.code, `docs/${doc}:${block.line}: ${result.stderr}`).toBe(0);
        }
      }
    });
  });

  describe('in this checkout (The two commands, View runs in Jaeger and Grafana)', () => {
    let store: string;
    beforeAll(() => {
      store = mkdtempSync(join(tmpdir(), 'runtel-readme-store-'));
    });
    afterAll(() => rmSync(store, { recursive: true, force: true }));
    const checkoutBlocks = (): CodeBlock[] => blocks.filter((b) => CHECKOUT_SECTIONS.has(b.section));

    it('the two commands: `npm ci && npm test` is what CI runs; `npm run demo` (after the npm ci CI did) trains the demo; ls and show read it', () => {
      const [twoCommands, afterDemo] = checkoutBlocks().filter((b) => b.section === 'The two commands');
      expect(commands(twoCommands!)).toEqual(['npm ci && npm run demo', 'npm ci && npm test']);
      const ci = readFileSync(join(REPO, '.ci', 'run'), 'utf8').split('\n');
      expect(ci.filter((line) => !line.startsWith('#') && line.trim() !== '').at(-1)).toBe('npm ci && npm test');

      const demo = bash('npm run demo', REPO, userEnv({ RUNTEL_DIR: store }));
      expect(demo.code, demo.stderr).toBe(0);
      expect(demo.stdout).toMatch(/Best trial: iris-softmax-trial-\d/);

      expect(commands(afterDemo!)).toEqual(['npx runtel ls', 'npx runtel show iris-softmax']);
      const ls = bash('npx runtel ls', REPO, userEnv({ RUNTEL_DIR: store }));
      expect(ls.code, ls.stderr).toBe(0);
      expect(ls.stdout).toContain('1 top-level run and 9 child runs');
      const show = bash('npx runtel show iris-softmax', REPO, userEnv({ RUNTEL_DIR: store }));
      expect(show.code, show.stderr).toBe(0);
      expect(show.stdout.split('\n')[0]).toBe('iris-softmax  success');
      expect(show.stdout).toContain('Child runs (9)');
    });

    it('the OpenTelemetry block: the demo exports its runs as OTLP/protobuf to localhost:4318', async () => {
      const otel = checkoutBlocks().filter((b) => b.section === 'View runs in Jaeger and Grafana');
      expect(otel).toHaveLength(1);
      const requests: Array<{ path: string; type: string; body: Buffer }> = [];
      const servers: Server[] = [];
      const listen = (host: string): Promise<void> =>
        new Promise((resolve, reject) => {
          const server = createServer((req, res) => {
            const chunks: Buffer[] = [];
            req.on('data', (c: Buffer) => chunks.push(c));
            req.on('end', () => {
              requests.push({ path: req.url ?? '', type: String(req.headers['content-type']), body: Buffer.concat(chunks) });
              res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
            });
          });
          server.once('error', reject);
          server.listen(4318, host, () => {
            servers.push(server);
            resolve();
          });
        });
      // localhost is 127.0.0.1 and, where the machine has IPv6, ::1.
      await listen('127.0.0.1').catch((error: unknown) => {
        throw new Error(`port 4318, which the README names, is not free on 127.0.0.1: ${String(error)}`);
      });
      await listen('::1').catch(() => undefined);
      try {
        // Asynchronously: the receiver runs in this process.
        const result = await bashAsync(otel[0]!.code, REPO, userEnv({ RUNTEL_DIR: store }));
        expect(result.code, result.stderr).toBe(0);
      } finally {
        await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
      }
      const traces = Buffer.concat(requests.filter((r) => r.path === '/v1/traces').map((r) => r.body));
      const logs = Buffer.concat(requests.filter((r) => r.path === '/v1/logs').map((r) => r.body));
      expect(requests.every((r) => r.type === 'application/x-protobuf')).toBe(true);
      // Protobuf keeps strings as they are: the service, the search span and every trial span are there.
      expect(traces.includes('service.name') && traces.includes(Buffer.from([0x0a, 0x04, ...Buffer.from('iris')]))).toBe(true);
      for (const name of ['iris-softmax', ...Array.from({ length: 9 }, (_, i) => `iris-softmax-trial-${i}`)]) expect(traces.includes(name), name).toBe(true);
      expect(logs.includes('ml.metric')).toBe(true);
    });
  });
});

describe("README's bad-input table: each row is what the input gets", () => {
  const fresh = () => {
    const logger = new InMemoryLogger();
    const run = logger.startRun({ name: 'bad', activate: false });
    return { logger, run, events: () => logger.events.length };
  };
  const checks: Record<string, () => void | Promise<void>> = {
    'metric value not a number (string, boolean, null, undefined, bigint, object)': () => {
      const { run } = fresh();
      for (const value of ['1', true, null, undefined, 1n, {}]) expect(() => run.logMetrics({ loss: value as number })).toThrow(/^metric "loss" must be a number/);
      for (const value of ['1', true, null, undefined, 1n, {}]) expect(() => run.logMetrics({ loss: value as number })).toThrow(TypeError);
    },
    'NaN, +Infinity, -Infinity': () => {
      const { logger, run } = fresh();
      run.logMetrics({ a: NaN, b: Infinity, c: -Infinity });
      const { metrics } = logger.getRun(run.id)!;
      expect([metrics.a![0]!.value, metrics.b![0]!.value, metrics.c![0]!.value]).toEqual([NaN, Infinity, -Infinity]);
    },
    'key empty, > 250 characters, or outside letters and digits of any script (`précision` is fine), `_ - . / :` and space; or with `.`/`..`/empty path segments': () => {
      const { logger, run } = fresh();
      for (const key of ['', 'k'.repeat(251), 'loss@train', 'loss🔥', 'a/../b', 'a//b']) {
        expect(() => run.logMetrics({ [key]: 1 })).toThrow(TypeError);
        expect(() => run.logMetrics({ [key]: 1 })).toThrow(`invalid metric key ${JSON.stringify(key)}`);
      }
      expect(() => run.logMetrics({ 'loss@train': 1 })).toThrow('(any script, as MLflow)');
      run.logMetrics({ précision: 1, ['k'.repeat(250)]: 1, 'val/a-b_c.d e:f': 1 });
      expect(Object.keys(logger.getRun(run.id)!.metrics)).toHaveLength(3);
    },
    'circular config': () => {
      const config: Record<string, unknown> = { a: {} };
      (config.a as Record<string, unknown>).self = config.a;
      expect(() => fresh().logger.startRun({ config, activate: false })).toThrow(/circular at "a\.self"/);
    },
    'param value > 6000 characters': () => {
      expect(() => fresh().run.logParams({ big: 'x'.repeat(6001) })).toThrow(RangeError);
      expect(() => fresh().run.logParams({ big: 'x'.repeat(6001) })).toThrow(/logArtifact/);
    },
    'param re-logged with another value': () => {
      const { run } = fresh();
      run.logParams({ lr: 0.1 });
      run.logParams({ lr: 0.1 });
      expect(() => run.logParams({ lr: 0.2 })).toThrow('param "lr" is already "0.1"; params are write-once, so it cannot become "0.2"');
    },
    'step negative, fractional or unsafe; timestamp before 1970 or not finite': () => {
      const { run } = fresh();
      for (const step of [-1, 1.5, 2 ** 53]) expect(() => run.logMetrics({ a: 1 }, { step })).toThrow(RangeError);
      for (const timestamp of [-1, NaN, Infinity]) expect(() => run.logMetrics({ a: 1 }, { timestamp })).toThrow(RangeError);
    },
    'timestamp in seconds (`Date.now() / 1000`: any value from 1e8 to 1e11)': () => {
      const { run, events } = fresh();
      const before = events();
      for (const timestamp of [Date.now() / 1000, 1e8, 1e11 - 1]) expect(() => run.logMetrics({ a: 1 }, { timestamp })).toThrow(RangeError);
      expect(() => run.logMetrics({ a: 1 }, { timestamp: Date.now() / 1000 })).toThrow('pass milliseconds');
      expect(events()).toBe(before);
    },
    '`logMetrics({})`': () => {
      const { logger, run, events } = fresh();
      const before = events();
      run.logMetrics({});
      expect(events()).toBe(before);
      run.logMetrics({ a: 1 });
      expect(logger.getRun(run.id)!.metrics.a![0]!.step).toBe(0);
    },
    'logging after `finish`': async () => {
      const { run } = fresh();
      const first = run.finish();
      await first;
      expect(() => run.logMetrics({ a: 1 })).toThrow('logMetrics after finish is not allowed');
      expect(run.finish('failed')).toBe(first);
      expect(run.status).toBe('success');
    },
    'artifact path that does not exist': () => {
      expect(() => fresh().run.logArtifact('/no/such/file')).toThrow('artifact path "/no/such/file" does not exist or cannot be read');
    },
    '`RUNTEL_SYSTEM_METRICS` or `MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING` not `true`/`false`/`1`/`0`; system metrics interval ≤ 0, fractional or not a number': () => {
      const saved = { ...process.env };
      try {
        for (const name of ['RUNTEL_SYSTEM_METRICS', 'MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING']) {
          process.env[name] = 'yes';
          expect(() => new InMemoryLogger()).toThrow(TypeError);
          expect(() => new InMemoryLogger()).toThrow(`${name} must be true, false, 1 or 0, got "yes"`);
          delete process.env[name];
        }
        process.env.RUNTEL_SYSTEM_METRICS = 'true';
        for (const value of ['0', '-1', '2.5', 'often']) {
          process.env.RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS = value;
          expect(() => new InMemoryLogger()).toThrow(RangeError);
          expect(() => new InMemoryLogger()).toThrow('RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS must be a whole number of milliseconds greater than 0');
        }
        expect(() => new InMemoryLogger({ systemMetricsIntervalMillis: 0 })).toThrow('systemMetricsIntervalMillis must be');
      } finally {
        for (const name of ['RUNTEL_SYSTEM_METRICS', 'MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING', 'RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS']) {
          if (saved[name] === undefined) delete process.env[name];
          else process.env[name] = saved[name];
        }
      }
    },
  };

  const rows = tableRows(README, 'Bad input');

  it('has a check for every row, and a row for every check', () => {
    expect(rows.map((r) => r[0])).toEqual(Object.keys(checks));
  });

  it.each(Object.entries(checks))('%s', async (_row, check) => {
    await check();
  });
});
