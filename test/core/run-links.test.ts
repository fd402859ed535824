// Where a run can be seen (issue 14, item 9): the MLflow and W&B run pages, printed by the console
// when the run exists there and on its end line, kept in the JSONL store and shown by `runtel show`.
// Against a real MLflow and the W&B test server; the MLflow page address is checked against the one
// the browser test opens (test/ui/mlflow-ui.ts), the W&B one against the run the server holds.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompositeLogger, ConsoleLogger, JsonlLogger, MlflowLogger, readRun } from '../../src/index.js';
import { mlflowRunUrl, publishRunLink, wandbRunUrl } from '../../src/core/runLinks.js';
import { renderShow } from '../../src/cli/commands/show.js';
import { wandbRunId } from '../../src/wandb/history.js';
import { runUrl } from '../ui/mlflow-ui.js';
import { runsByRuntelId, useMlflowServer, waitFor } from '../mlflow/helpers.js';
import { WandbTestServer } from '../wandb/server.js';
import { testLogger } from '../wandb/helpers.js';

const mlflow = useMlflowServer();
let wandb: WandbTestServer;
beforeAll(async () => {
  wandb = await WandbTestServer.start();
});
afterAll(async () => {
  await wandb.close();
});

function storeDir(): string {
  return mkdtempSync(join(tmpdir(), 'runtel-links-'));
}

describe('run pages', () => {
  it('MLflow: printed once the run exists and on the end line, kept in the store, shown by runtel show', async () => {
    const lines: string[] = [];
    const dir = storeDir();
    const logger = new CompositeLogger([new ConsoleLogger({ write: (line) => lines.push(line) }), new JsonlLogger({ dir }), new MlflowLogger({ trackingUri: mlflow.server.url })]);
    const run = logger.startRun({ name: 'linked', experiment: 'links' });
    run.logMetrics({ loss: 1 }, { step: 0 });
    const stored = await waitFor('the run in MLflow', async () => (await runsByRuntelId(mlflow.client, 'links')).get(run.id));
    const expected = runUrl(mlflow.server.url, stored.info.experiment_id, stored.info.run_id);
    await waitFor('the link line', () => Promise.resolve(lines.some((l) => l.includes(expected)) ? true : undefined), 10_000);
    expect(lines.filter((l) => l.includes(expected))).toEqual([`[runtel]   linked in MLflow: ${expected}`]);
    await run.finish();
    await logger.shutdown();
    expect(lines.at(-1)).toMatch(/^\[runtel\] ■ linked success .* · MLflow (\S+)$/);
    expect(lines.at(-1)!.endsWith(` · MLflow ${expected}`)).toBe(true);

    expect(readRun(join(dir, run.id))!.links).toEqual({ MLflow: expected });
    const shown = renderShow(run.id, { dir, charts: false });
    expect(shown).toMatch(new RegExp(`MLflow\\s+${expected.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  });

  it('W&B, a run that ends before W&B has it: its page is printed when it comes (during shutdown), and kept in the store', async () => {
    const lines: string[] = [];
    const dir = storeDir();
    const { logger: wandbLogger, failures } = testLogger(wandb);
    const logger = new CompositeLogger([new ConsoleLogger({ write: (line) => lines.push(line) }), new JsonlLogger({ dir }), wandbLogger]);
    const run = logger.startRun({ name: 'linked', experiment: 'links-project' });
    run.logMetrics({ loss: 1 }, { step: 0 });
    await run.finish();
    await logger.shutdown();
    expect(failures).toEqual([]);
    const held = wandb.getRun('links-project', wandbRunId(run.id));
    expect(held).toBeDefined();
    const expected = `${wandb.url}/${wandb.entity}/links-project/runs/${wandbRunId(run.id)}`;
    expect(lines.filter((l) => l.includes(expected))).toEqual([`[runtel]   linked in W&B: ${expected}`]);
    expect(readRun(join(dir, run.id))!.links).toEqual({ 'W&B': expected });
    expect(readRun(join(dir, run.id))!.record.status).toBe('success');
  });

  it('a link for a run the console does not know prints nothing, a repeated one prints once, one after the run ended prints on its own line', async () => {
    const lines: string[] = [];
    const logger = new ConsoleLogger({ write: (line) => lines.push(line) });
    const run = logger.startRun({ name: 'quiet' });
    publishRunLink({ runId: '0'.repeat(32), label: 'MLflow', url: 'http://elsewhere/' });
    publishRunLink({ runId: run.id, label: 'MLflow', url: 'http://mlflow:5000/#/experiments/1/runs/a' });
    publishRunLink({ runId: run.id, label: 'MLflow', url: 'http://mlflow:5000/#/experiments/1/runs/a' });
    await run.finish();
    publishRunLink({ runId: run.id, label: 'W&B', url: 'http://late/' });
    await logger.shutdown();
    publishRunLink({ runId: run.id, label: 'W&B', url: 'http://after-shutdown/' });
    expect(lines.filter((l) => l.includes('http://'))).toEqual([
      '[runtel]   quiet in MLflow: http://mlflow:5000/#/experiments/1/runs/a',
      expect.stringMatching(/^\[runtel\] ■ quiet success .* · MLflow http:\/\/mlflow:5000\/#\/experiments\/1\/runs\/a$/),
      '[runtel]   quiet in W&B: http://late/',
    ]);
  });

  it('addresses: no credentials, no page for a tracking URI that is not a web server, the hosted API host maps to its app', () => {
    expect(mlflowRunUrl('https://user:secret@mlflow.example:8443/prefix/?x=1', '7', 'abc')).toBe('https://mlflow.example:8443/prefix/#/experiments/7/runs/abc');
    expect(mlflowRunUrl('file:///tmp/mlruns', '0', 'abc')).toBeUndefined();
    expect(mlflowRunUrl('databricks', '0', 'abc')).toBeUndefined();
    expect(wandbRunUrl('https://api.wandb.ai', 'team', 'proj', 'r1')).toBe('https://wandb.ai/team/proj/runs/r1');
    expect(wandbRunUrl('http://user:pw@wandb.local:8080/', 'my team', 'p', 'r1')).toBe('http://wandb.local:8080/my%20team/p/runs/r1');
  });
});
