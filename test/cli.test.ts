// The built `runtel` bin, run as a child process. `npm test` builds first (npx tsc -p tsconfig.build.json).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import type { Command } from 'commander';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { JsonlLogger } from '../src/backends/jsonl/JsonlLogger.js';

const MAIN = resolve('dist/cli/main.js');

function runtel(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  return runtelWith({}, ...args);
}

function runtelWith(extra: { env?: NodeJS.ProcessEnv; cwd?: string }, ...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', COLUMNS: '120' };
  delete env.RUNTEL_BACKENDS;
  delete env.RUNTEL_DIR;
  delete env.MLFLOW_TRACKING_URI;
  const result = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...env, ...extra.env }, cwd: extra.cwd, timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Lines of a help text that break before a word that would have fitted on them (a break in the middle
 * of a sentence), or run past the width. Continuations: an indented line deeper than an item (more than
 * 2 spaces) continues the line above; an unindented line continues an unindented line that is not a title.
 */
function badBreaks(text: string, width: number): string[] {
  const lines = text.split('\n');
  const bad: string[] = [];
  lines.forEach((line, i) => {
    if (line.length > width && line.trim().includes(' ')) bad.push(`too long (${line.length} > ${width}): ${line}`);
    const next = lines[i + 1];
    if (next === undefined || line.trim() === '' || next.trim() === '') return;
    const indent = (l: string): number => l.length - l.trimStart().length;
    const continues = indent(next) > 2 || (indent(next) === 0 && indent(line) === 0 && !line.endsWith(':'));
    const word = next.trimStart().split(' ')[0]!;
    if (continues && line.length + 1 + word.length <= width) bad.push(`early break before "${word}": ${line}`);
  });
  return bad;
}

describe('runtel CLI', () => {
  let dir: string;
  let demo: ReturnType<typeof runtel>;
  let bestName: string;

  beforeAll(() => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first with npx tsc -p tsconfig.build.json`);
    dir = mkdtempSync(join(tmpdir(), 'runtel-cli-test-'));
    demo = runtel('demo', '--dir', dir, '--epochs', '20');
    bestName = /Best trial: (\S+)/.exec(demo.stdout)?.[1] ?? '';
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('demo trains the grid, prints the results and the next commands', () => {
    expect(demo.code, demo.stderr).toBe(0);
    expect(demo.stdout).toContain('Grid search over lr × l2 (9 trials)');
    expect(bestName).toMatch(/^iris-softmax-trial-\d$/);
    expect(demo.stdout).toContain(`runtel ls --dir ${dir}`);
    expect(demo.stdout).toContain(`runtel show ${bestName} --dir ${dir}`);
    // The console backend is on by default (standard error is not a terminal here, so no bars).
    expect(demo.stderr).toContain('[runtel] ▶ iris-softmax started');
    expect(demo.stderr).toMatch(/\[runtel\] ■ iris-softmax success/);
  });

  it('ls shows the trials indented under their parent, with statuses and metrics', () => {
    const ls = runtel('ls', '--dir', dir);
    expect(ls.code, ls.stderr).toBe(0);
    const lines = ls.stdout.split('\n');
    const parentLine = lines.findIndex((l) => /│ iris-softmax +│/.test(l));
    expect(parentLine).toBeGreaterThan(0);
    const children = lines.slice(parentLine + 1, parentLine + 10);
    expect(children.map((l) => /│ (├─|└─) (iris-softmax-trial-\d) /.exec(l)?.[2])).toEqual(Array.from({ length: 9 }, (_, i) => `iris-softmax-trial-${i}`));
    expect(children[8]).toContain('└─ iris-softmax-trial-8');
    expect(lines[parentLine]).toContain('success');
    expect(lines[parentLine]).toContain('best_final_val_loss=');
    for (const child of children) {
      expect(child).toContain('success');
      expect(child).toMatch(/final_val_loss=\d/);
    }
    expect(ls.stdout).toContain('1 top-level run and 9 child runs');
  });

  it('ls filters by experiment and limits top-level runs', () => {
    const none = runtel('ls', '--dir', dir, '--experiment', 'nope');
    expect(none.code).toBe(0);
    expect(none.stdout).toContain('No runs of experiment "nope"');
    const bad = runtel('ls', '--dir', dir, '--limit', '0');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('expected an integer ≥ 1');
  });

  it('show <trial> prints params, latest metrics, the model artifact and charts', () => {
    const show = runtel('show', bestName, '--dir', dir);
    expect(show.code, show.stderr).toBe(0);
    const out = show.stdout;
    expect(out.split('\n')[0]).toBe(`${bestName}  success`);
    expect(out).toMatch(/parent +iris-softmax \([0-9a-f]{8}\)/);
    expect(out).toMatch(/\n {2}lr +0\.\d+\n/);
    expect(out).toMatch(/val\/accuracy +[\d.]+ +step 20, 21 points/);
    expect(out).toContain('models/softmax-regression  directory');
    expect(out).toContain('Charts');
    expect(out).toMatch(/val\/loss {2}21 steps, 0–20/);
    expect(out).toMatch(/┤/); // asciichart's axis
    expect(out).toMatch(/[╭╮╰╯─]/);
    expect(out).toMatch(/step 0 +step 20/);
  });

  it('show <parent> lists the child runs and the best trial', () => {
    const show = runtel('show', 'iris-softmax', '--dir', dir);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain('Child runs (9)');
    expect(show.stdout).toMatch(new RegExp(`best_trial_name +${bestName}`));
    expect(show.stdout).toMatch(/search\.grid\.lr +\[0\.05,0\.2,0\.5\]/);
    expect(show.stdout.match(/iris-softmax-trial-\d/g)!.length).toBeGreaterThanOrEqual(9);
  });

  it('show charts a curve with NaN and Infinity points, skipping them', async () => {
    const logger = new JsonlLogger({ dir });
    const run = logger.startRun({ name: 'with-nan', experiment: 'nan-test' });
    [1, 0.8, NaN, 0.5, Infinity, 0.3, -Infinity, 0.2].forEach((v, step) => run.logMetrics({ loss: v }, { step }));
    run.logMetrics({ broken: NaN }, { step: 0 });
    run.logMetrics({ broken: NaN }, { step: 1 });
    await run.finish('failed', new Error('diverged'));
    await logger.shutdown();

    const show = runtel('show', 'with-nan', '--dir', dir);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain('loss  5 steps, 0–7, 3 NaN/Infinity points skipped');
    expect(show.stdout).toContain('broken (only 2 NaN/Infinity)');
    expect(show.stdout).toContain('Error: diverged');
    expect(show.stdout.split('\n')[0]).toBe('with-nan  failed');
  });

  it('show exits 1 with a clear message for an unknown run', () => {
    const show = runtel('show', 'no-such-run', '--dir', dir);
    expect(show.code).toBe(1);
    expect(show.stderr).toContain(`runtel: no run with id or name "no-such-run" in ${dir}`);
    expect(show.stdout).toBe('');
  });

  it('ls has an experiment column', () => {
    const ls = runtel('ls', '--dir', dir);
    expect(ls.stdout).toMatch(/│ name +│ id +│ experiment +│ status +│/);
    expect(ls.stdout).toMatch(/│ iris-softmax +│ [0-9a-f]{8} │ iris-softmax +│ success/);
    expect(ls.stdout).toMatch(/│ ├─ iris-softmax-trial-0 +│ [0-9a-f]{8} │ iris-softmax +│ success/);
  });

  it('show with an id prefix shorter than 4 characters says so', () => {
    const id = /│ iris-softmax +│ ([0-9a-f]{8})/.exec(runtel('ls', '--dir', dir).stdout)![1]!;
    const show = runtel('show', id.slice(0, 3), '--dir', dir);
    expect(show.code).toBe(1);
    expect(show.stderr).toContain(`runtel: no run named "${id.slice(0, 3)}" in ${dir}, and an id prefix needs at least 4 characters ("${id.slice(0, 3)}" has 3)`);
    expect(runtel('show', id.slice(0, 4), '--dir', dir).stdout.split('\n')[0]).toBe('iris-softmax  success');
  });

  it('ls and show on a store folder that does not exist are errors; the default folder not existing yet is "No runs"', () => {
    const missing = join(dir, 'no-such-store');
    for (const command of [['ls'], ['show', 'x']]) {
      const byOption = runtel(...command, '--dir', missing);
      expect(byOption.code, command.join(' ')).toBe(1);
      expect(byOption.stderr).toBe(`runtel: no run store at ${missing} (--dir): the folder does not exist\n`);
      const byEnv = runtelWith({ env: { RUNTEL_DIR: missing } }, ...command);
      expect(byEnv.code).toBe(1);
      expect(byEnv.stderr).toBe(`runtel: no run store at ${missing} (RUNTEL_DIR): the folder does not exist\n`);
    }
    const fresh = mkdtempSync(join(tmpdir(), 'runtel-cli-empty-'));
    try {
      const ls = runtelWith({ cwd: fresh }, 'ls');
      expect(ls.code).toBe(0);
      expect(ls.stdout).toContain(`No runs in ${join(realpathSync(fresh), 'runtel-runs')}. Try 'runtel demo' to make some.`);
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  it('sync --to mlflow without a server names --tracking-uri and MLFLOW_TRACKING_URI', () => {
    const sync = runtel('sync', '--to', 'mlflow', '--dir', dir, '--no-progress');
    expect(sync.code).toBe(1);
    expect(sync.stderr).toBe('runtel: sync --to mlflow needs the MLflow server: pass --tracking-uri <uri> or set MLFLOW_TRACKING_URI\n');
  });

  it('help texts wrap at word boundaries to the width, never in the middle of a sentence', async () => {
    // As a child process (standard output not a terminal: 80 columns), every command.
    const commands = [[], ['demo'], ['ls'], ['show'], ['sync'], ['bridge'], ['bridge', 'serve']];
    for (const command of commands) {
      const help = runtel(...command, '--help');
      expect(help.code).toBe(0);
      expect(badBreaks(help.stdout, 80), `runtel ${command.join(' ')} --help`).toEqual([]);
    }
    // In process, at other terminal widths (below about 75 columns commander stops wrapping the command list).
    const { createProgram } = await import('../src/cli/program.js');
    for (const width of [80, 100, 132]) {
      for (const command of commands) {
        let out = '';
        const program = createProgram();
        let target: Command = program;
        for (const name of command) target = target.commands.find((c) => c.name() === name)!;
        for (let c: Command | null = target; c !== null; c = c.parent) c.configureOutput({ getOutHelpWidth: () => width, writeOut: (s) => (out += s) });
        target.outputHelp();
        expect(badBreaks(out, width), `runtel ${command.join(' ')} --help at ${width} columns`).toEqual([]);
        expect(out).toContain('Usage: runtel');
      }
    }
  });

  it('has help for every command', () => {
    const help = runtel('--help');
    expect(help.code).toBe(0);
    for (const command of ['demo', 'ls', 'show']) expect(help.stdout).toContain(command);
    expect(runtel('show', '--help').stdout).toContain('run id, id prefix (4+ characters) or name');
    expect(runtel('demo', '--help').stdout).toContain('--epochs <n>');
  });
});
