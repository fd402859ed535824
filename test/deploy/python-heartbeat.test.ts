// examples/python/runtel_otel.py heartbeats: a quiet Python run keeps the bridge from finishing it
// crashed for several stale-afters; killed with SIGKILL, it is finished crashed once; a bad
// RUNTEL_HEARTBEAT_INTERVAL_MILLIS is an error naming it. The Python SDK exports OTLP/HTTP protobuf
// straight to the bridge.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBridge } from '../../src/bridge/RuntelBridge.js';
import type { RuntelBridge } from '../../src/bridge/RuntelBridge.js';
import { RecordingBackend } from '../bridge/helpers.js';
import { REPO_ROOT, examplePython, runCommand } from './helpers.js';

const HEARTBEAT = 200;
const STALE = 800;
let bridge: RuntelBridge;
const backend = new RecordingBackend();

beforeAll(async () => {
  bridge = await createBridge({ port: 0, targets: [backend], heartbeatIntervalMillis: HEARTBEAT, staleAfterMillis: STALE, finishSettleMillis: 0, log: () => undefined });
});

afterAll(async () => {
  await bridge?.close();
});

const SCRIPT = [
  'import sys, time',
  'from runtel_otel import RuntelOtel',
  'otel = RuntelOtel(experiment="py-heartbeat")',
  'run = otel.start_run("quiet")',
  'for step in range(3):',
  '    run.log_metric("loss", 1 / (step + 1), step=step)',
  'print(run.id, flush=True)',
  'time.sleep(600)',
].join('\n');

describe('runtel_otel.py heartbeats', () => {
  it('a quiet Python run is not finished crashed while it heartbeats; killed, it is finished crashed once', async () => {
    const env = { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: bridge.url, OTEL_BLRP_SCHEDULE_DELAY: '50', OTEL_BSP_SCHEDULE_DELAY: '50', OTEL_METRIC_EXPORT_INTERVAL: '600000', RUNTEL_HEARTBEAT_INTERVAL_MILLIS: String(HEARTBEAT) };
    const child = spawn(examplePython(), ['-c', SCRIPT], { cwd: join(REPO_ROOT, 'examples/python'), env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const runId = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (c: Buffer) => resolve(c.toString().trim()));
      child.once('exit', (code) => reject(new Error(`python exited ${code}: ${stderr}`)));
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      await new Promise((r) => setTimeout(r, 5 * STALE));
      const mine = (): typeof backend.events => backend.events.filter((e) => e.runId === runId);
      expect(mine().map((e) => e.type)).toEqual(['run_started', 'metrics', 'metrics', 'metrics']);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const deadline = Date.now() + STALE + 5000;
    while (!backend.events.some((e) => e.runId === runId && e.type === 'run_finished') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(backend.events.filter((e) => e.runId === runId && e.type === 'run_finished')).toEqual([expect.objectContaining({ status: 'crashed' })]);
  }, 60_000);

  it('a bad RUNTEL_HEARTBEAT_INTERVAL_MILLIS is a ValueError naming it', async () => {
    const result = await runCommand(examplePython(), ['-c', 'from runtel_otel import RuntelOtel\nRuntelOtel(experiment="x")'], {
      cwd: join(REPO_ROOT, 'examples/python'),
      env: { ...process.env, RUNTEL_HEARTBEAT_INTERVAL_MILLIS: '-3' },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("ValueError: RUNTEL_HEARTBEAT_INTERVAL_MILLIS must be a number of milliseconds greater than 0, got '-3'");
  });
});
