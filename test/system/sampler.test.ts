// System metrics in the core: opt-in per logger and from the environment, bad input named, only
// top-level runs sampled, steps from 0 within the run's lifetime, nothing after the end, and a
// program with a sampled run still exits on its own.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { InMemoryLogger, createLoggerFromEnv } from '../../src/index.js';
import type { SystemMetricsEvent } from '../../src/core/events.js';
import { MLFLOW_SYSTEM_KEYS, PROCESS_KEYS } from './keys.js';

const ENV = ['RUNTEL_SYSTEM_METRICS', 'MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING', 'RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS'] as const;
const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));
afterEach(() => {
  for (const k of ENV) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const samples = (logger: InMemoryLogger) => logger.backend.events.filter((e): e is SystemMetricsEvent => e.type === 'system_metrics');

const HOST_KEYS = [...MLFLOW_SYSTEM_KEYS, ...PROCESS_KEYS];

describe('bad input: a clear error naming the option or variable', () => {
  it.each(['yes', 'on', 'ture', '2'])('RUNTEL_SYSTEM_METRICS=%s', (value) => {
    process.env.RUNTEL_SYSTEM_METRICS = value;
    expect(() => new InMemoryLogger()).toThrow(TypeError);
    expect(() => new InMemoryLogger()).toThrow(`RUNTEL_SYSTEM_METRICS must be true, false, 1 or 0, got ${JSON.stringify(value)}`);
    expect(() => createLoggerFromEnv()).toThrow('RUNTEL_SYSTEM_METRICS must be');
  });

  it('MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=maybe', () => {
    process.env.MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING = 'maybe';
    expect(() => new InMemoryLogger()).toThrow('MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING must be true, false, 1 or 0, got "maybe"');
  });

  it.each(['0', '-5', '1.5', 'ten', '1e12'])('RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS=%s', (value) => {
    process.env.RUNTEL_SYSTEM_METRICS = 'true';
    process.env.RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS = value;
    expect(() => new InMemoryLogger()).toThrow(RangeError);
    expect(() => new InMemoryLogger()).toThrow(`RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS must be a whole number of milliseconds greater than 0 (at most 2147483647), got ${JSON.stringify(value)}`);
  });

  it.each([0, -1, 0.5, Number.NaN, Infinity])('systemMetricsIntervalMillis: %s', (value) => {
    expect(() => new InMemoryLogger({ systemMetrics: true, systemMetricsIntervalMillis: value })).toThrow(`systemMetricsIntervalMillis must be a whole number of milliseconds greater than 0 (at most 2147483647), got ${value}`);
  });

  it('systemMetrics that is not a boolean', () => {
    expect(() => new InMemoryLogger({ systemMetrics: 'true' as unknown as boolean })).toThrow('systemMetrics must be a boolean, got string');
  });

  it('a bad interval does not matter while sampling is off', () => {
    process.env.RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS = '-1';
    expect(() => new InMemoryLogger()).not.toThrow();
  });
});

describe('sampling', () => {
  it('is off by default', async () => {
    const logger = new InMemoryLogger({ systemMetricsIntervalMillis: 20 });
    const run = logger.startRun({ name: 'off' });
    await sleep(150);
    await run.finish();
    expect(samples(logger)).toEqual([]);
  });

  it.each([
    ['RUNTEL_SYSTEM_METRICS', 'true'],
    ['MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING', 'true'],
    ['RUNTEL_SYSTEM_METRICS', '1'],
  ])('is turned on by %s=%s, every RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS', async (name, value) => {
    process.env[name] = value;
    process.env.RUNTEL_SYSTEM_METRICS_INTERVAL_MILLIS = '50';
    const logger = new InMemoryLogger();
    const run = logger.startRun({ name: 'env' });
    await sleep(400);
    await run.finish();
    expect(samples(logger).length).toBeGreaterThanOrEqual(3);
  });

  it('the option wins over the environment', async () => {
    process.env.RUNTEL_SYSTEM_METRICS = 'true';
    const logger = new InMemoryLogger({ systemMetrics: false, systemMetricsIntervalMillis: 20 });
    const run = logger.startRun({ name: 'option' });
    await sleep(150);
    await run.finish();
    expect(samples(logger)).toEqual([]);
  });

  it("samples only top-level runs, steps from 0, within the run's lifetime, nothing after its end", async () => {
    const logger = new InMemoryLogger({ systemMetrics: true, systemMetricsIntervalMillis: 50 });
    const parent = logger.startRun({ name: 'parent' });
    const child = logger.startRun({ name: 'child', nested: true });
    const other = logger.startRun({ name: 'other top-level', activate: false });
    await sleep(450);
    await child.finish();
    await other.finish();
    await parent.finish();
    const ended = samples(logger).length;
    const records = logger.backend.runs;
    const parentRecord = records.get(parent.id)!;
    expect(records.get(child.id)!.system).toBeUndefined();
    expect(records.get(other.id)!.system).toBeDefined();
    for (const key of HOST_KEYS) expect(parentRecord.system?.[key]?.length, key).toBeGreaterThanOrEqual(3);
    const mine = samples(logger).filter((e) => e.runId === parent.id);
    expect(mine.map((e) => e.step)).toEqual(mine.map((_, i) => i));
    for (const e of mine) {
      expect(e.timestamp).toBeGreaterThanOrEqual(parentRecord.startTime);
      expect(e.timestamp).toBeLessThanOrEqual(parentRecord.endTime!);
    }
    await sleep(200);
    expect(samples(logger).length).toBe(ended);
    // Every sample event comes before its run's end.
    const events = logger.backend.events;
    const end = events.findIndex((e) => e.type === 'run_finished' && e.runId === parent.id);
    expect(events.slice(end).some((e) => e.type === 'system_metrics' && e.runId === parent.id)).toBe(false);
  });

  it('gives plausible values', async () => {
    const logger = new InMemoryLogger({ systemMetrics: true, systemMetricsIntervalMillis: 100 });
    const run = logger.startRun({ name: 'values' });
    await sleep(250);
    await run.finish();
    const v = samples(logger)[0]!.values;
    expect(v['system/cpu_utilization_percentage']).toBeGreaterThanOrEqual(0);
    expect(v['system/cpu_utilization_percentage']).toBeLessThanOrEqual(100);
    expect(v['system/system_memory_usage_percentage']).toBeGreaterThan(0);
    expect(v['system/system_memory_usage_percentage']).toBeLessThan(100);
    expect(v['system/disk_usage_megabytes']! + v['system/disk_available_megabytes']!).toBeGreaterThan(0);
    expect(v['system/process_memory_rss_megabytes']).toBeGreaterThan(v['system/process_heap_used_megabytes']!);
    expect(v['system/process_memory_rss_megabytes']).toBeCloseTo(process.memoryUsage().rss / 1e6, -2);
  });

  it('a resumed run continues its system steps', async () => {
    const logger = new InMemoryLogger({ systemMetrics: true, systemMetricsIntervalMillis: 50 });
    const first = logger.startRun({ name: 'resumable' });
    await sleep(200);
    await first.finish();
    const before = samples(logger).length;
    expect(before).toBeGreaterThan(0);
    const again = logger.startRun({ runId: first.id });
    await sleep(200);
    await again.finish();
    const steps = samples(logger).map((e) => e.step);
    expect(steps).toEqual(steps.map((_, i) => i));
    expect(steps.length).toBeGreaterThan(before);
  });
});

describe('the process', () => {
  it('exits on its own with a sampled run still running (the sampler keeps nothing alive)', () => {
    const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'index.js');
    const script = `import { InMemoryLogger } from ${JSON.stringify(dist)};
const logger = new InMemoryLogger({ systemMetrics: true, systemMetricsIntervalMillis: 20 });
logger.startRun({ name: 'left running' });
setTimeout(() => process.stdout.write('done\\n'), 100);`;
    const started = Date.now();
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(child.status, child.stderr).toBe(0);
    expect(child.stdout).toBe('done\n');
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
