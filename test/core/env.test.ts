import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backendsFromEnv, createLoggerFromEnv, listRuns, withRun } from '../../src/index.js';

const saved = { ...process.env };
afterEach(() => {
  for (const key of ['RUNTEL_BACKENDS', 'RUNTEL_DIR', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'MLFLOW_TRACKING_URI', 'WANDB_API_KEY']) {
    if (saved[key] === undefined) delete process.env[key];
    else process.env[key] = saved[key];
  }
});

describe('createLoggerFromEnv', () => {
  it('defaults to the JSONL store and the console', () => {
    delete process.env.RUNTEL_BACKENDS;
    delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    delete process.env.MLFLOW_TRACKING_URI;
    delete process.env.WANDB_API_KEY;
    expect(backendsFromEnv()).toEqual(['jsonl', 'console']);
  });

  it('RUNTEL_BACKENDS overrides the choice, case and spaces ignored, duplicates once', () => {
    process.env.RUNTEL_BACKENDS = ' JSONL , memory,jsonl ';
    expect(backendsFromEnv()).toEqual(['jsonl', 'memory']);
    process.env.RUNTEL_BACKENDS = 'none';
    expect(backendsFromEnv()).toEqual([]);
  });

  it('an unknown backend name is an error listing the supported ones', () => {
    process.env.RUNTEL_BACKENDS = 'jsonl,tensorboard';
    expect(() => backendsFromEnv()).toThrow(/unknown backend "tensorboard"; supported: jsonl, console, memory/);
  });

  it('writes runs into RUNTEL_DIR', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-env-'));
    process.env.RUNTEL_DIR = dir;
    process.env.RUNTEL_BACKENDS = 'jsonl';
    const logger = createLoggerFromEnv();
    await withRun(logger, { name: 'from-env' }, (run) => run.logMetrics({ a: 1 }));
    await logger.shutdown();
    expect(listRuns(dir).map((r) => r.record.name)).toEqual(['from-env']);
  });
});
