// Fault: the bridge (`runtel bridge serve`, a child process) is stopped with SIGTERM while training
// goes on and the collector keeps sending, stays down for 30 s, and is started again on the same
// port with empty memory. The collector holds the data and retries; the new bridge finds the run in
// MLflow by its runtel.run_id tag. MLflow ends up with one run per runtel run and every point
// exactly once, including a nested run that started during the outage.

import { afterAll, describe, expect, it } from 'vitest';
import { MlflowClient } from '../../src/mlflow/MlflowClient.js';
import { freePort, startMlflow } from '../services/index.js';
import type { CollectorHandle, MlflowHandle } from '../services/index.js';
import { poll, setupOrFail } from '../otel/real/util.js';
import { mlflowRunsFor, otelEmitter, runsTaggedAnywhere, startBridgeCollector, startBridgeProcess } from './pipeline.js';
import type { BridgeProcess } from './pipeline.js';

const EXPERIMENT = 'bridge-fault';
const OUTAGE_MS = 30_000;
const STEP_EVERY_MS = 25;

let mlflow: MlflowHandle | undefined;
let collector: CollectorHandle | undefined;
let client: MlflowClient;
let otlpUrl = '';
let port = 0;
let bridge: BridgeProcess | undefined;
const bridgeOutput: string[] = [];

/** `runtel bridge serve` (the built CLI) on the test's port, forwarding to the test's MLflow. */
const startBridge = (): Promise<BridgeProcess> => startBridgeProcess(port, { MLFLOW_TRACKING_URI: mlflow!.url }, ['--flush-timeout', '60000']);

async function stopBridge(b: BridgeProcess): Promise<number | null> {
  const code = await b.stop();
  bridgeOutput.push(b.output());
  return code;
}

const ready = setupOrFail(async () => {
  mlflow = await startMlflow();
  client = new MlflowClient({ trackingUri: mlflow.url, retryTimeoutMillis: 10_000 });
  port = await freePort();
  bridge = await startBridge();
  ({ collector, otlpUrl } = await startBridgeCollector(`http://127.0.0.1:${port}`));
}, 300_000);

afterAll(async () => {
  if (bridge !== undefined) await stopBridge(bridge);
  await collector?.stop();
  await client?.close();
  await mlflow?.stop();
});

describe('bridge outage and restart', () => {
  it(`loses and duplicates nothing across a ${OUTAGE_MS / 1000} s outage`, async () => {
    ready();
    const emitter = otelEmitter(otlpUrl, 'bridge-fault');
    const base = Date.now() - 3_600_000;
    const main = emitter.logger.startRun({ name: 'long', experiment: EXPERIMENT, config: { lr: 0.1 } });
    let step = 0;
    let nestedSteps = 0;
    const current: { nested?: ReturnType<typeof emitter.logger.startRun> } = {};
    const train = async (millis: number): Promise<void> => {
      const end = Date.now() + millis;
      while (Date.now() < end) {
        main.logMetrics({ loss: 1 / (step + 1), acc: step / 10_000 }, { step, timestamp: base + step });
        if (current.nested !== undefined) current.nested.logMetrics({ score: nestedSteps }, { step: nestedSteps, timestamp: base + nestedSteps++ });
        step++;
        await new Promise((r) => setTimeout(r, STEP_EVERY_MS));
      }
    };

    await train(3_000);
    // The run is in MLflow before the outage.
    await poll('the run in MLflow', async () => ((await mlflowRunsFor(client, EXPERIMENT, main.id)).length === 1 ? true : undefined), 30_000);
    const code = await stopBridge(bridge!);
    expect(code, `the bridge exited ${code} on SIGTERM; its output: ${bridgeOutput.join("").slice(-2000)}`).toBe(0);
    const outageStart = Date.now();
    await train(OUTAGE_MS / 2);
    const nested = emitter.logger.startRun({ name: 'during-outage', experiment: EXPERIMENT, parent: main });
    current.nested = nested;
    await train(OUTAGE_MS / 2);
    bridge = await startBridge();
    const outage = Date.now() - outageStart;
    // While the run goes on (no span yet, no start record resent), the restarted bridge takes the
    // points held during the outage: it found the run in MLflow by its tag. (Were it to wait for a
    // start record instead, they would be held for the 30 s grace period.)
    const stepAtRestart = step;
    await Promise.all([
      train(5_000),
      poll(
        "the outage's points in MLflow while the run still trains",
        async () => {
          const [run] = await mlflowRunsFor(client, EXPERIMENT, main.id);
          return run !== undefined && (await client.getMetricHistory(run.info.run_id, 'loss')).length >= stepAtRestart ? true : undefined;
        },
        20_000,
      ),
    ]);
    expect(main.status).toBe('running');
    await nested.finish('success');
    await main.finish('success');
    await emitter.shutdown();
    expect(emitter.processor.deliveryStats()).toMatchObject({ undelivered: 0 });

    const runs = await poll(
      'both runs finished in MLflow with every point',
      async () => {
        const [m, n] = [await mlflowRunsFor(client, EXPERIMENT, main.id), await mlflowRunsFor(client, EXPERIMENT, nested.id)];
        if (m.length !== 1 || n.length !== 1 || m[0]!.info.status !== 'FINISHED' || n[0]!.info.status !== 'FINISHED') return undefined;
        const loss = await client.getMetricHistory(m[0]!.info.run_id, 'loss');
        const score = await client.getMetricHistory(n[0]!.info.run_id, 'score');
        return loss.length >= step && score.length >= nestedSteps ? { main: m[0]!, nested: n[0]! } : undefined;
      },
      120_000,
      500,
    );
    console.log(`[bridge fault] ${step} steps × 2 keys + ${nestedSteps} nested points; bridge down ${outage} ms`);

    // One MLflow run per runtel run (the restarted bridge found them by tag), in the right place.
    const all = await client.searchRuns([(await client.getExperimentIdByName(EXPERIMENT))!], '', 'ALL');
    expect(all).toHaveLength(2);
    expect(await runsTaggedAnywhere(client, mlflow!.url, main.id)).toHaveLength(1);
    expect(await runsTaggedAnywhere(client, mlflow!.url, nested.id)).toHaveLength(1);
    expect(runs.nested.data.tags?.find((t) => t.key === 'mlflow.parentRunId')?.value).toBe(runs.main.info.run_id);
    expect(runs.main.info.run_name).toBe('long');
    // Every point exactly once, exact.
    for (const key of ['loss', 'acc'] as const) {
      const history = await client.getMetricHistory(runs.main.info.run_id, key);
      expect(history).toHaveLength(step);
      expect(new Set(history.map((p) => p.step)).size).toBe(step);
      const want = (s: number): number => (key === 'loss' ? 1 / (s + 1) : s / 10_000);
      expect(history.filter((p) => p.value !== want(p.step) || p.timestamp !== base + p.step).slice(0, 5)).toEqual([]);
    }
    const score = await client.getMetricHistory(runs.nested.info.run_id, 'score');
    expect(score.map((p) => p.step).sort((a, b) => a - b)).toEqual(Array.from({ length: nestedSteps }, (_, i) => i));
    // The outage really happened: the collector retried.
    expect(collector!.logs()).toMatch(/Will retry the request|retry/i);
    expect(collector!.logs()).not.toMatch(/Dropping data/);
    expect(bridgeOutput.join('')).toMatch(/SIGTERM, delivering what was accepted/);
    expect(bridge.output()).toMatch(/listening on/);
  }, 300_000);
});
