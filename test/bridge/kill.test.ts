// The bridge loses nothing, however it dies: a Collector with a persistent (file_storage) sending
// queue and retries that never give up sits in front of `runtel bridge serve` (the built CLI); 5
// runs train at once, each with a nested run, while the bridge is killed with SIGKILL three times at
// random moments and started again on the same ports. A request is answered only once its data is
// delivered, so what a killed bridge had taken the Collector still has, and sends again; the targets
// make that harmless. MLflow, read with its own Python client: every run once, every point once,
// right status and parent. W&B (the W&B-protocol test server): no history row twice, every step.
// Once over OTLP/HTTP and once over OTLP/gRPC (the Collector's otlp exporter).

import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startCollector, startMlflow } from '../services/index.js';
import type { CollectorHandle, MlflowHandle } from '../services/index.js';
import { poll, setupOrFail } from '../otel/real/util.js';
import { readBackWithPython } from '../mlflow/helpers.js';
import { WandbTestServer } from '../wandb/server.js';
import { API_KEY_40, pointsOf, rowsWandbKeeps } from '../wandb/helpers.js';
import { wandbRunId } from '../../src/wandb/history.js';
import type { Run } from '../../src/index.js';
import { otelEmitter, startBridgeProcess } from './pipeline.js';
import type { BridgeProcess } from './pipeline.js';

const RUNS = 5;
const STEPS = 2000;
const NESTED_STEPS = 200;
const KILLS = 3;

let mlflow: MlflowHandle | undefined;
let wandb: WandbTestServer | undefined;

const ready = setupOrFail(async () => {
  mlflow = await startMlflow();
  wandb = await WandbTestServer.start({ apiKey: API_KEY_40 });
}, 300_000);

afterAll(async () => {
  await wandb?.close();
  await mlflow?.stop();
});

/** A collector: OTLP/HTTP in; out to the bridge over HTTP or gRPC, queued on disk, retrying for ever. */
async function queueingCollector(protocol: 'http' | 'grpc', bridgeHttp: number, bridgeGrpc: number): Promise<{ collector: CollectorHandle; otlpUrl: string }> {
  const [otlpHttp, health] = [await freePort(), await freePort()];
  const storage = mkdtempSync(join(tmpdir(), 'runtel-queue-'));
  const exporter =
    protocol === 'http'
      ? `otlp_http/bridge:\n    endpoint: http://127.0.0.1:${bridgeHttp}\n    compression: gzip`
      : `otlp_grpc/bridge:\n    endpoint: 127.0.0.1:${bridgeGrpc}\n    tls: { insecure: true }\n    compression: gzip`;
  const name = protocol === 'http' ? 'otlp_http/bridge' : 'otlp_grpc/bridge';
  const config = `
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${otlpHttp}
exporters:
  ${exporter}
    timeout: 15s
    retry_on_failure: { enabled: true, initial_interval: 200ms, max_interval: 1s, max_elapsed_time: 0 }
    sending_queue:
      enabled: true
      num_consumers: 4
      queue_size: 10000
      storage: file_storage/queue
      batch: { flush_timeout: 200ms, min_size: 256 }
extensions:
  health_check:
    endpoint: 127.0.0.1:${health}
  file_storage/queue:
    directory: ${storage}
    fsync: true
service:
  extensions: [health_check, file_storage/queue]
  telemetry:
    metrics:
      level: none
  pipelines:
    logs: { receivers: [otlp], exporters: [${name}] }
    traces: { receivers: [otlp], exporters: [${name}] }
`;
  const collector = await startCollector(config, { readyUrl: `http://127.0.0.1:${health}/` });
  return { collector, otlpUrl: `http://127.0.0.1:${otlpHttp}` };
}

describe.each<['http' | 'grpc']>([['http'], ['grpc']])('a bridge killed with SIGKILL %s', (protocol) => {
  it(`three times while ${RUNS} runs train: every run and point once in MLflow and W&B`, async () => {
    ready();
    const experiment = `bridge-kill-${protocol}`;
    const [httpPort, grpcPort] = [await freePort(), await freePort()];
    const env = { MLFLOW_TRACKING_URI: mlflow!.url, WANDB_API_KEY: API_KEY_40, WANDB_BASE_URL: wandb!.url, WANDB_MODE: 'online' };
    const startBridge = (): Promise<BridgeProcess> => startBridgeProcess(httpPort, env, ['--grpc-port', String(grpcPort), '--flush-timeout', '20000']);
    let bridge = await startBridge();
    const { collector, otlpUrl } = await queueingCollector(protocol, httpPort, grpcPort);
    const emitter = otelEmitter(otlpUrl, experiment);
    try {
      const base = Date.now() - 3_600_000;
      // A seeded order of kill moments (ms into training), so a failure can be replayed.
      let seed = protocol === 'http' ? 11 : 23;
      const random = (): number => ((seed = (Math.imul(seed, 48271) + 1) % 2147483647) & 0x7fffffff) / 2147483647;
      const killAt = Array.from({ length: KILLS }, (_, i) => 2000 + i * 4500 + Math.floor(random() * 2500));
      const t0 = Date.now();
      const kills = (async () => {
        for (const at of killAt) {
          await new Promise((r) => setTimeout(r, Math.max(0, t0 + at - Date.now())));
          bridge.child.kill('SIGKILL');
          await new Promise((r) => bridge.child.once('exit', r));
          await new Promise((r) => setTimeout(r, 300 + Math.floor(random() * 1000)));
          bridge = await startBridge();
        }
      })();
      const parents: Run[] = [];
      const children: Run[] = [];
      await Promise.all(
        Array.from({ length: RUNS }, async (_, r) => {
          const run = emitter.logger.startRun({ name: `run-${r}`, experiment, config: { r } });
          parents.push(run);
          const nested = emitter.logger.startRun({ name: `run-${r}-eval`, experiment, parent: run });
          children.push(nested);
          for (let step = 0; step < STEPS; step++) {
            run.logMetrics({ loss: 1 / (step + 1), acc: step / STEPS }, { step, timestamp: base + step });
            if (step < NESTED_STEPS) nested.logMetrics({ score: step }, { step, timestamp: base + step });
            if (step === NESTED_STEPS) await nested.finish('success');
            await new Promise((res) => setTimeout(res, 8));
          }
          await run.finish(r === 0 ? 'failed' : 'success', r === 0 ? new Error('diverged') : undefined);
        }),
      );
      await kills;
      await emitter.shutdown();
      expect(emitter.processor.deliveryStats()).toMatchObject({ undelivered: 0 });

      const expected = parents.length + children.length;
      const py = await poll(
        'every run finished in MLflow with every point',
        async () => {
          const runs = await readBackWithPython(mlflow!.url, experiment).catch(() => []);
          if (runs.length < expected || runs.some((x) => x.status === 'RUNNING')) return undefined;
          const complete = runs.every((x) => (x.metrics.loss === undefined || x.metrics.loss.length >= STEPS) && (x.metrics.score === undefined || x.metrics.score.length >= NESTED_STEPS));
          return complete ? runs : undefined;
        },
        180_000,
        2000,
      );
      console.log(`[bridge kill ${protocol}] killed at ${killAt.join(', ')} ms; ${RUNS} runs × ${STEPS} steps × 2 keys + ${RUNS} nested × ${NESTED_STEPS}`);
      // Every run once, with its status and parent.
      expect(py).toHaveLength(expected);
      for (const run of parents) {
        const mine = py.filter((x) => x.tags['runtel.run_id'] === run.id);
        expect(mine, run.name).toHaveLength(1);
        expect(mine[0]!.status).toBe(run.name === 'run-0' ? 'FAILED' : 'FINISHED');
        for (const key of ['loss', 'acc']) {
          const points = mine[0]!.metrics[key]!;
          expect(points, `${run.name} ${key}`).toHaveLength(STEPS);
          expect(new Set(points.map(([step]) => step)).size).toBe(STEPS);
          expect(points.filter(([step, , ts]) => ts !== base + step)).toEqual([]);
        }
      }
      for (const nested of children) {
        const mine = py.filter((x) => x.tags['runtel.run_id'] === nested.id);
        expect(mine, nested.name).toHaveLength(1);
        const parent = py.find((x) => x.tags['runtel.run_id'] === nested.parentId)!;
        expect(mine[0]!.tags['mlflow.parentRunId']).toBe(parent.run_id);
        expect(mine[0]!.status).toBe('FINISHED');
        expect(mine[0]!.metrics.score!.map(([step]) => step)).toEqual(Array.from({ length: NESTED_STEPS }, (_, i) => i));
      }
      // W&B: every step once, no row twice.
      for (const run of [...parents, ...children]) {
        const stored = await poll(`${run.name} complete in W&B`, () => Promise.resolve(wandb!.getRun(experiment, wandbRunId(run.id))?.complete === true ? wandb!.getRun(experiment, wandbRunId(run.id)) : undefined), 60_000);
        const rows = wandb!.history(stored);
        expect(rowsWandbKeeps(rows), run.name).toEqual(rows);
        const points = pointsOf(rows);
        const seen = new Set(points.map(([step, key]) => `${key}@${step}`));
        expect(seen.size, `${run.name}: a point written twice`).toBe(points.length);
        const steps = run.parentId === undefined ? STEPS : NESTED_STEPS;
        expect(points.length, run.name).toBe(run.parentId === undefined ? 2 * steps : steps);
      }
      expect(collector.logs()).not.toMatch(/Dropping data|Exporting failed. Dropping/);
    } finally {
      await bridge.stop();
      await collector.stop();
    }
  }, 420_000);
});
