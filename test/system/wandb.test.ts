// System metrics to W&B: rows of the run's events stream (wandb-events.jsonl, W&B's system charts),
// not history rows, with the keys W&B's own client writes. The keys are checked against what the
// real `wandb` SDK (the provisioned venv) sends to the same test server for its own system metrics.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wandbRunId } from '../../src/wandb/history.js';
import { wandbPython } from '../services/index.js';
import { WandbTestServer, parseExtendedJson } from '../wandb/server.js';
import { realSdkEnv, testLogger } from '../wandb/helpers.js';

let server: WandbTestServer;
beforeAll(async () => {
  server = await WandbTestServer.start();
});
afterAll(async () => {
  await server?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rows = (lines: string[]) => lines.map((l) => parseExtendedJson(l) as Record<string, unknown>);

async function runtelRun(): Promise<{ lines: string[]; history: string[]; start: number; end: number; offsets: number[] }> {
  const { logger, failures } = testLogger(server, { systemMetrics: true, systemMetricsIntervalMillis: 60 });
  const start = Date.now();
  const run = logger.startRun({ name: 'sys', experiment: 'system-metrics' });
  for (let step = 0; step < 5; step++) {
    run.logMetrics({ loss: 1 / (step + 1) });
    await sleep(100);
  }
  await run.finish();
  const end = Date.now();
  await logger.shutdown();
  expect(failures).toEqual([]);
  const stored = server.getRun('system-metrics', wandbRunId(run.id))!;
  const offsets = server
    .fileStreams(stored.name)
    .map((r) => (r.body as { files?: Record<string, { offset: number }> }).files?.['wandb-events.jsonl']?.offset)
    .filter((o): o is number => o !== undefined);
  return { lines: stored.eventsLines, history: stored.historyLines, start, end, offsets };
}

describe('WandbLogger with system metrics', () => {
  it('streams samples as wandb-events.jsonl rows, none in the history', async () => {
    const { lines, history, start, end, offsets } = await runtelRun();
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.every((l) => l !== undefined)).toBe(true);
    expect(offsets[0]).toBe(0);
    for (const row of rows(lines)) {
      expect(row._wandb).toBe(true);
      expect((row._timestamp as number) * 1000).toBeGreaterThanOrEqual(start);
      expect((row._timestamp as number) * 1000).toBeLessThanOrEqual(end);
      expect(row._runtime).toBeGreaterThanOrEqual(0);
      for (const key of ['system.cpu', 'system.memory_percent', 'system.proc.memory.rssMB', 'system.proc.memory.percent', 'system.proc.memory.availableMB', 'system.disk./.usagePercent', 'system.disk./.usageGB', 'system.network.sent', 'system.network.recv']) {
        expect(typeof row[key], key).toBe('number');
      }
      expect(row['system.memory_percent']).toBeGreaterThan(0);
      expect(row['system.memory_percent']).toBeLessThan(100);
    }
    // Bytes since the run's first sample, as W&B counts them.
    expect(rows(lines)[0]!['system.network.recv']).toBe(0);
    expect(history.length).toBe(5);
    for (const line of history) expect(Object.keys(parseExtendedJson(line) as object).filter((k) => k.startsWith('system'))).toEqual([]);
  });
});

// The real client's own system metrics, sampled fast, against the same server.
const SCRIPT = `
import time, wandb
run = wandb.init(project="system-metrics", id="realsys01", settings=wandb.Settings(x_stats_sampling_interval=0.2))
time.sleep(6)
run.finish()
`;

function realSdkRun(): Promise<{ code: number | null; output: string }> {
  const home = mkdtempSync(join(tmpdir(), 'runtel-wandb-sys-'));
  writeFileSync(join(home, 'real_sys.py'), SCRIPT);
  const env = realSdkEnv(server.url, home);
  return new Promise((resolve, reject) => {
    const child = spawn(wandbPython(), [join(home, 'real_sys.py')], { env, cwd: home, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('against the real wandb SDK', () => {
  it("writes its system rows with keys the real client uses for the same quantities", async () => {
    const real = await realSdkRun();
    expect(real.code, real.output).toBe(0);
    const realRows = rows(server.getRun('system-metrics', 'realsys01')!.eventsLines.filter((l) => l !== undefined));
    expect(realRows.length, 'the real client sent system rows').toBeGreaterThan(0);
    const realKeys = new Set(realRows.flatMap((r) => Object.keys(r)));
    const ours = rows((await runtelRun()).lines);
    const ourKeys = new Set(ours.flatMap((r) => Object.keys(r)));
    // runtel's own Node keys (heap, event loop) have no W&B counterpart; everything else must be W&B's.
    const shared = [...ourKeys].filter((k) => !k.startsWith('system.proc.eventloop.') && k !== 'system.proc.memory.heapUsedMB');
    expect(shared.filter((k) => !realKeys.has(k)), `real keys: ${[...realKeys].sort().join(', ')}`).toEqual([]);
    expect(shared.length).toBeGreaterThanOrEqual(12);
  }, 120_000);
});
