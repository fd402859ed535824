// Shared setup for the W&B tests: a test server, fast loggers, and W&B's own acceptance rules.

import type { BackendFailure } from '../../src/core/errors.js';
import { WandbLogger } from '../../src/wandb/WandbLogger.js';
import type { WandbLoggerOptions } from '../../src/wandb/WandbLogger.js';
import type { StoredWandbRun, WandbTestServer } from './server.js';

export const API_KEY_40 = 'f'.repeat(8) + '0123456789abcdef0123456789abcdef';
export const API_KEY_86 = 'wandb_v1_' + 'Ab3'.repeat(25) + 'xyz0';

/** A logger against the test server with short intervals and retry waits. */
export function testLogger(server: WandbTestServer, options: WandbLoggerOptions = {}): { logger: WandbLogger; failures: BackendFailure[] } {
  const failures: BackendFailure[] = [];
  const logger = new WandbLogger({
    baseUrl: server.url,
    apiKey: API_KEY_40,
    mode: 'online',
    flushIntervalMillis: 50,
    retryMinDelayMillis: 5,
    retryMaxDelayMillis: 20,
    flushTimeoutMillis: 20_000,
    onError: (failure) => failures.push(failure),
    ...options,
  });
  return { logger, failures };
}

/**
 * What W&B keeps of a run's history: its own client drops a row whose `_step` is lower than the one
 * before ("Steps must be monotonically increasing, so this data will be ignored").
 */
export function rowsWandbKeeps(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  const kept: Record<string, unknown>[] = [];
  let last = -1;
  for (const row of rows) {
    const step = row._step as number;
    if (step < last) continue;
    kept.push(row);
    last = step;
  }
  return kept;
}

/** Every file_stream offset continues exactly where the previous request's lines ended. */
export function historyOffsetsContiguous(server: WandbTestServer, run: StoredWandbRun): boolean {
  let expected: number | undefined;
  for (const request of server.fileStreams(run.name)) {
    if (request.status !== 200) continue;
    const chunk = (request.body as { files?: Record<string, { offset: number; content: string[] }> }).files?.['wandb-history.jsonl'];
    if (chunk === undefined) continue;
    if (expected !== undefined && chunk.offset !== expected) return false;
    expected = chunk.offset + chunk.content.length;
  }
  return run.gaps.length === 0;
}

/** The (runtel step, key, value) points in a run's history rows, sorted. */
export function pointsOf(rows: Record<string, unknown>[], stepKey = 'runtel/step'): [number, string, number][] {
  const out: [number, string, number][] = [];
  for (const row of rows) {
    for (const [key, value] of Object.entries(row)) {
      if (key.startsWith('_') || key === stepKey) continue;
      out.push([row[stepKey] as number, key, value as number]);
    }
  }
  return out.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]) || a[2] - b[2]);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('waitFor: timed out');
    await sleep(10);
  }
}

/**
 * The environment of a real `wandb` SDK process talking only to the test server: its files under
 * `home`, no telemetry, anything else sent to a closed loopback port. `extra` adds or overrides.
 */
export function realSdkEnv(serverUrl: string, home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    WANDB_BASE_URL: serverUrl,
    WANDB_API_KEY: API_KEY_40,
    WANDB_MODE: 'online',
    WANDB_SILENT: 'true',
    WANDB_CONSOLE: 'off',
    WANDB_DIR: home,
    WANDB_CONFIG_DIR: home,
    WANDB_CACHE_DIR: home,
    WANDB_DATA_DIR: home,
    WANDB_DISABLE_GIT: 'true',
    WANDB_DISABLE_CODE: 'true',
    WANDB_ERROR_REPORTING: 'false',
    WANDB_DISABLE_JOB_CREATION: 'true',
    DO_NOT_TRACK: '1',
    HTTP_PROXY: 'http://127.0.0.1:9',
    HTTPS_PROXY: 'http://127.0.0.1:9',
    http_proxy: 'http://127.0.0.1:9',
    https_proxy: 'http://127.0.0.1:9',
    NO_PROXY: '127.0.0.1,localhost',
    no_proxy: '127.0.0.1,localhost',
    ...extra,
  };
}
