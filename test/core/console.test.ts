// The console backend (issue 14, item 8): compact by default — a line when a run starts, at most one
// progress line per run every few seconds (step, rate, latest values), a line when it ends — and
// every event with mode 'verbose' or RUNTEL_CONSOLE=verbose. The demo prints a few dozen lines, not ~1000.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConsoleLogger } from '../../src/index.js';

afterEach(() => {
  vi.useRealTimers();
  delete process.env.RUNTEL_CONSOLE;
});

/** A run of 1000 steps over 20 simulated seconds (a step every 20 ms), with params, tags and an artifact. */
async function train(logger: ConsoleLogger): Promise<void> {
  const file = join(mkdtempSync(join(tmpdir(), 'runtel-console-')), 'weights.bin');
  writeFileSync(file, Buffer.alloc(2048));
  const run = logger.startRun({ name: 'fit', experiment: 'iris', config: { lr: 0.1 }, activate: false });
  run.setTags({ stage: 'dev' });
  run.logParams({ batch: 32 });
  for (let step = 0; step < 1000; step++) {
    vi.advanceTimersByTime(20);
    run.logMetrics({ 'train/loss': 1 / (step + 1), 'val/accuracy': step / 1000 });
  }
  run.logArtifact(file);
  await run.finish();
}

describe('ConsoleLogger, compact (the default)', () => {
  it('prints the start, a progress line at most every 5 s with step, rate and latest values, and the end', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: 1_750_000_000_000 });
    const lines: string[] = [];
    const logger = new ConsoleLogger({ write: (line) => lines.push(line) });
    expect(logger.backend.mode).toBe('compact');
    await train(logger);
    // 20 s of training: 4 progress lines (at 5, 10, 15, 20 s), plus start and end.
    expect(lines).toHaveLength(6);
    expect(lines[0]).toMatch(/^\[runtel\] ▶ fit started \(id [0-9a-f]{8}, experiment iris\) lr=0\.1$/);
    expect(lines[1]).toBe('[runtel]   fit step 249 (50 steps/s) train/loss=0.004 val/accuracy=0.249');
    expect(lines[4]).toBe('[runtel]   fit step 999 (50 steps/s) train/loss=0.001 val/accuracy=0.999');
    expect(lines[5]).toBe('[runtel] ■ fit success in 20.0s, step 999, train/loss=0.001 val/accuracy=0.999, 1 artifact');
    expect(lines.join('\n')).not.toContain('stage');
  });

  it('a faster interval prints more often; a failed run ends with ✗ and the error', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: 1_750_000_000_000 });
    const lines: string[] = [];
    const logger = new ConsoleLogger({ write: (line) => lines.push(line), intervalMillis: 1000 });
    const run = logger.startRun({ name: 'boom', activate: false });
    for (let step = 0; step < 100; step++) {
      vi.advanceTimersByTime(100);
      run.logMetrics({ loss: step });
    }
    await run.finish('failed', new RangeError('diverged'));
    expect(lines).toHaveLength(1 + 10 + 1);
    expect(lines.at(-1)).toBe('[runtel] ✗ boom failed in 10.0s, step 99, loss=99: RangeError: diverged');
  });
});

describe('ConsoleLogger, verbose', () => {
  it.each([
    ['the option', { mode: 'verbose' as const }],
    ['RUNTEL_CONSOLE=verbose', {}],
  ])('%s: one line per event', async (_how, options) => {
    if (!('mode' in options)) process.env.RUNTEL_CONSOLE = 'verbose';
    vi.useFakeTimers({ toFake: ['Date'], now: 1_750_000_000_000 });
    const lines: string[] = [];
    const logger = new ConsoleLogger({ ...options, write: (line) => lines.push(line) });
    expect(logger.backend.mode).toBe('verbose');
    await train(logger);
    // start, tags, params, 1000 metric lines, artifact, end
    expect(lines).toHaveLength(1005);
    expect(lines[1]).toBe('[runtel]   fit tags stage=dev');
    expect(lines[3]).toBe('[runtel]   fit step 0 train/loss=1 val/accuracy=0');
    expect(lines[1003]).toBe('[runtel]   fit artifact weights.bin (file, 2.0 KiB)');
    expect(lines[1004]).toBe('[runtel] ■ fit success in 20.0s');
  });

  it('an unknown RUNTEL_CONSOLE value warns and stays compact; a bad option is a TypeError', () => {
    process.env.RUNTEL_CONSOLE = 'loud';
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(new ConsoleLogger({ write: () => undefined }).backend.mode).toBe('compact');
      expect(stderr).toHaveBeenCalledWith('runtel: ignoring RUNTEL_CONSOLE="loud": expected compact or verbose\n');
    } finally {
      stderr.mockRestore();
    }
    expect(() => new ConsoleLogger({ mode: 'loud' as 'verbose' })).toThrow("console mode must be 'compact' or 'verbose', got \"loud\"");
  });
});

describe('the demo on the console', () => {
  const MAIN = resolve('dist/cli/main.js');
  const demo = (env: Record<string, string>): string[] => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-console-demo-'));
    try {
      const childEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...env };
      delete childEnv.RUNTEL_BACKENDS;
      const result = spawnSync(process.execPath, [MAIN, 'demo', '--dir', dir], { encoding: 'utf8', env: childEnv, timeout: 120_000 });
      expect(result.status, result.stderr).toBe(0);
      return result.stderr.split('\n').filter((line) => line !== '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('prints a line per run start and end (and few progress lines), and every event with RUNTEL_CONSOLE=verbose', () => {
    const compact = demo({});
    const verbose = demo({ RUNTEL_CONSOLE: 'verbose' });
    // 10 runs (the search and 9 trials): 20 lines, and a progress line per trial per 5 s at most.
    expect(compact.filter((l) => l.startsWith('[runtel] ▶'))).toHaveLength(10);
    expect(compact.filter((l) => /^\[runtel\] [■✗]/.test(l))).toHaveLength(10);
    expect(compact.length).toBeLessThan(40);
    // 9 trials × 101 epochs of metric lines, and more.
    expect(verbose.length).toBeGreaterThan(900);
    expect(compact.find((l) => l.includes('■ iris-softmax-trial-0 success'))).toMatch(/success in \S+, step 101, .*val\/accuracy=0\.\d+ .*final_val_loss=/);
  });
});
