// `runtel sync --to wandb` from the command line, against the W&B-protocol test server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonlLogger, withRun } from '../../src/index.js';
import { wandbRunId } from '../../src/wandb/history.js';
import { WandbTestServer } from './server.js';
import { API_KEY_40, pointsOf } from './helpers.js';

let server: WandbTestServer;
const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
beforeAll(async () => {
  server = await WandbTestServer.start();
});
afterAll(async () => {
  await server.close();
});

function runtel(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, WANDB_API_KEY: API_KEY_40, WANDB_BASE_URL: server.url, WANDB_PROJECT: 'cli-sync' };
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { env }, (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

describe('runtel sync --to wandb', () => {
  it('uploads the store; a second sync sends no history line again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-cli-wandb-'));
    const logger = new JsonlLogger({ dir });
    const id = await withRun(logger, { name: 'offline', experiment: 'cli-sync' }, (run) => {
      for (let step = 0; step < 100; step++) run.logMetrics({ loss: 1 / (step + 1) }, { step });
      return run.id;
    });
    await logger.shutdown();
    const first = await runtel(['sync', '--to', 'wandb', '--dir', dir]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('synced 1 run (100 metric points) to wandb');
    const stored = server.runs.find((r) => r.name === wandbRunId(id))!;
    expect(stored.exitcode).toBe(0);
    expect(pointsOf(server.history(stored)).map(([step]) => step)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    const lines = stored.historyLines.length;
    const again = await runtel(['sync', '--to', 'wandb', '--dir', dir]);
    expect(again.code).toBe(0);
    expect(stored.historyLines.length).toBe(lines);
  });
});
