// Credentials against MLflow's basic-auth app: Basic auth works; wrong credentials are a clear,
// unretried 401 that never shows the password.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompositeLogger, JsonlLogger, MlflowClient, MlflowLogger, readRun } from '../../src/index.js';
import type { BackendFailure } from '../../src/index.js';
import { MLFLOW_ADMIN, startMlflow } from '../services/index.js';
import type { MlflowHandle } from '../services/index.js';
import { runsByRuntelId } from './helpers.js';

let server: MlflowHandle;
beforeAll(async () => {
  server = await startMlflow({ basicAuth: true });
});
afterAll(async () => {
  await server?.stop();
});

describe('MLflow credentials', () => {
  it('MLFLOW_TRACKING_USERNAME/PASSWORD (Basic) log the run', async () => {
    process.env.MLFLOW_TRACKING_USERNAME = MLFLOW_ADMIN.username;
    process.env.MLFLOW_TRACKING_PASSWORD = MLFLOW_ADMIN.password;
    try {
      const logger = new MlflowLogger({ trackingUri: server.url });
      const run = logger.startRun({ name: 'authed', experiment: 'auth' });
      run.logMetrics({ a: 1 }, { step: 0 });
      await run.finish();
      await logger.shutdown();
      expect(logger.failureCounts()).toEqual({});
      const client = new MlflowClient({ trackingUri: server.url });
      expect((await runsByRuntelId(client, 'auth')).get(run.id)?.info.status).toBe('FINISHED');
      await client.close();
    } finally {
      delete process.env.MLFLOW_TRACKING_USERNAME;
      delete process.env.MLFLOW_TRACKING_PASSWORD;
    }
  });

  it('wrong credentials: a 401 reported once and clearly, not retried, the password never shown; the JSONL store keeps the run', async () => {
    const failures: BackendFailure[] = [];
    const secret = 'not-the-password-9f3e';
    const dir = mkdtempSync(join(tmpdir(), 'runtel-auth-'));
    const mlflow = new MlflowLogger({ trackingUri: server.url, username: MLFLOW_ADMIN.username, password: secret });
    const logger = new CompositeLogger([new JsonlLogger({ dir }), mlflow], { onError: (f) => failures.push(f) });
    const run = logger.startRun({ name: 'denied', experiment: 'auth-denied' });
    for (let step = 0; step < 20; step++) run.logMetrics({ loss: step }, { step });
    const start = Date.now();
    await run.finish();
    await logger.shutdown();
    expect(Date.now() - start).toBeLessThan(5000);
    expect(failures).toHaveLength(1);
    const message = String(failures[0]!.error);
    expect(message).toContain('HTTP 401');
    expect(message).not.toContain(secret);
    expect(JSON.stringify(failures)).not.toContain(secret);
    expect(mlflow.stats().retries).toBe(0);
    expect(readRun(join(dir, run.id))!.record.metrics.loss).toHaveLength(20);
  });
});
