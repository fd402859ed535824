// Each case spawns a real training process and reads its JSONL run log afterwards.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readRun } from '../../src/index.js';

const child = fileURLToPath(new URL('../fixtures/exit-child.mjs', import.meta.url));

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  runId: string;
  dir: string;
  millis: number;
}

function runChild(mode: string, options: { signal?: NodeJS.Signals; env?: Record<string, string> } = {}): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), 'runtel-exit-'));
  return new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = { ...process.env, ...options.env };
    if (options.env?.RUNTEL_EXIT_HANDLERS === undefined) delete env.RUNTEL_EXIT_HANDLERS;
    const proc = spawn(process.execPath, [child, dir, mode], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let sentAt = Date.now();
    proc.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (options.signal !== undefined && stdout.includes('ready')) {
        setTimeout(() => {
          sentAt = Date.now();
          proc.kill(options.signal);
        }, 100);
      }
    });
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      const runId = /ready ([0-9a-f]{32})/.exec(stdout)?.[1] ?? '';
      resolve({ code, signal, stderr, runId, dir, millis: Date.now() - sentAt });
    });
  });
}

function storedStatus(o: Outcome) {
  return readRun(join(o.dir, o.runId))!.record;
}

describe('process exit', () => {
  it('SIGTERM finishes the run killed, flushes, and dies by SIGTERM', async () => {
    const o = await runChild('loop', { signal: 'SIGTERM' });
    expect(o.signal).toBe('SIGTERM');
    const rec = storedStatus(o);
    expect(rec.status).toBe('killed');
    expect(rec.metrics.loss!.length).toBeGreaterThan(3);
    expect(o.millis).toBeLessThan(5000);
  });

  it('SIGINT finishes the run killed and dies by SIGINT', async () => {
    const o = await runChild('loop', { signal: 'SIGINT' });
    expect(o.signal).toBe('SIGINT');
    expect(storedStatus(o).status).toBe('killed');
  });

  it('an uncaught exception finishes the run failed with the error, prints it, exits 1', async () => {
    const o = await runChild('throw');
    expect(o.code).toBe(1);
    expect(o.stderr).toContain('training exploded');
    expect(storedStatus(o)).toMatchObject({ status: 'failed', error: { type: 'Error', message: 'training exploded' } });
  });

  it('an unhandled rejection finishes the run failed and exits 1', async () => {
    const o = await runChild('reject');
    expect(o.code).toBe(1);
    expect(storedStatus(o)).toMatchObject({ status: 'failed', error: { message: 'async training exploded' } });
  });

  it('a normal exit with a run left open finishes it success', async () => {
    const o = await runChild('normal');
    expect(o.code).toBe(0);
    expect(storedStatus(o).status).toBe('success');
  });

  it('a backend that never flushes cannot hold the exit past the deadline', async () => {
    const o = await runChild('hang', { signal: 'SIGTERM', env: { RUNTEL_FLUSH_TIMEOUT_MILLIS: '500' } });
    expect(o.signal).toBe('SIGTERM');
    expect(o.millis).toBeGreaterThanOrEqual(400);
    expect(o.millis).toBeLessThan(3000);
    expect(storedStatus(o).status).toBe('killed');
  });

  it('RUNTEL_EXIT_HANDLERS=false leaves signals to the app', async () => {
    const o = await runChild('loop', { signal: 'SIGTERM', env: { RUNTEL_EXIT_HANDLERS: 'false' } });
    expect(o.signal).toBe('SIGTERM');
    const stored = readRun(join(o.dir, o.runId));
    // Killed before runtel could write anything: no finish recorded.
    expect(stored?.record.status ?? 'running').toBe('running');
  });
});
