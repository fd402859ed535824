// What bad liveness input gets on the command line: a clear error naming the option or variable,
// exit code 1, and nothing changed.

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JsonlLogger } from '../../src/index.js';
import { runtel } from './helpers.js';

describe('runtel: bad stale-after and heartbeat input', () => {
  it('reap --stale-after shorter than 2 heartbeat intervals names --stale-after and changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-reap-bad-'));
    const logger = new JsonlLogger({ dir });
    const run = logger.startRun({ name: 'left-open' });
    await logger.forceFlush();
    const before = readFileSync(join(dir, run.id, 'events.jsonl'), 'utf8');
    const short = await runtel(['reap', '--dir', dir, '--stale-after', '100'], { RUNTEL_HEARTBEAT_INTERVAL_MILLIS: '' });
    expect(short.code).toBe(1);
    expect(short.stderr).toBe('runtel: --stale-after (100 ms) is shorter than 2 heartbeat intervals (RUNTEL_HEARTBEAT_INTERVAL_MILLIS = 30000 ms): live runs that are only quiet would be called crashed; use at least 60000 ms\n');
    expect((await runtel(['reap', '--dir', dir, '--stale-after', 'soon'])).stderr).toMatch(/option '--stale-after <ms>' argument 'soon' is invalid\. expected an integer ≥ 1\./);
    expect((await runtel(['reap', '--dir', dir, '--stale-after', '0'])).stderr).toMatch(/expected an integer ≥ 1/);
    expect(readFileSync(join(dir, run.id, 'events.jsonl'), 'utf8')).toBe(before);
    await logger.shutdown();
  });

  it('a bad RUNTEL_HEARTBEAT_INTERVAL_MILLIS is named by ls, reap, sync and bridge serve', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-reap-bad-'));
    for (const args of [['ls', '--dir', dir], ['reap', '--dir', dir], ['sync', '--to', 'mlflow', '--dir', dir, '--tracking-uri', 'http://127.0.0.1:9'], ['bridge', 'serve', '--port', '0', '--stale-after', '90000']]) {
      const out = await runtel(args, { RUNTEL_HEARTBEAT_INTERVAL_MILLIS: 'often', MLFLOW_TRACKING_URI: 'http://127.0.0.1:9' });
      expect(out.code, args.join(' ')).toBe(1);
      expect(out.stderr, args.join(' ')).toContain('RUNTEL_HEARTBEAT_INTERVAL_MILLIS must be a number of milliseconds greater than 0, got "often"');
    }
  });

  it('bridge serve --stale-after too short, and RUNTEL_BRIDGE_STALE_AFTER_MILLIS not a number, are named', async () => {
    const env = { MLFLOW_TRACKING_URI: 'http://127.0.0.1:9', RUNTEL_HEARTBEAT_INTERVAL_MILLIS: '1000' };
    const short = await runtel(['bridge', 'serve', '--port', '0', '--stale-after', '1500'], env);
    expect(short.code).toBe(1);
    expect(short.stderr).toContain('runtel: --stale-after (1500 ms) is shorter than 2 heartbeat intervals (RUNTEL_HEARTBEAT_INTERVAL_MILLIS = 1000 ms)');
    const env2 = await runtel(['bridge', 'serve', '--port', '0'], { ...env, RUNTEL_BRIDGE_STALE_AFTER_MILLIS: 'later' });
    expect(env2.code).toBe(1);
    expect(env2.stderr).toContain('RUNTEL_BRIDGE_STALE_AFTER_MILLIS must be a number of milliseconds greater than 0, got "later"');
  });

  it('reap --mlflow without a server says how to name one', async () => {
    const out = await runtel(['reap', '--mlflow'], { MLFLOW_TRACKING_URI: '' });
    expect(out.code).toBe(1);
    expect(out.stderr).toBe('runtel: reap --mlflow needs the MLflow server: pass --tracking-uri <uri> or set MLFLOW_TRACKING_URI\n');
  });
});
