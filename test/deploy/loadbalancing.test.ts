// collector-config/loadbalancing.yaml for real, in its two topologies:
// - direct: 30 training processes (OtelLogger, each its own service) → the load-balancing collector
//   (its load_balancing exporter routing traces and logs by service.name over OTLP/gRPC, with the
//   bearer token) → three bridges' gRPC receivers → one real MLflow;
// - sidecars (HTTP-only networks): 20 processes → the same collector → two sidecar collectors
//   (bridge-sidecar.yaml, OTLP/gRPC in, OTLP/HTTP out with the token) → two bridges → MLflow.
// Traces also go to a real Jaeger. The runs train at once (every fifth with a nested run). Each run
// lands once in MLflow, complete; each run tree (span and records) went through one bridge only, and
// every bridge had a share (all services hashing to fewer bridges has a chance below 3 in 2^20).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createBridge } from '../../src/bridge/RuntelBridge.js';
import type { RuntelBridge } from '../../src/bridge/RuntelBridge.js';
import { MlflowBackend } from '../../src/mlflow/MlflowBackend.js';
import { MlflowClient } from '../../src/mlflow/MlflowClient.js';
import type { MlflowRun } from '../../src/mlflow/MlflowClient.js';
import type { Run } from '../../src/core/types.js';
import { freePort, startCollector, startJaeger, startMlflow } from '../services/index.js';
import type { CollectorHandle, JaegerHandle, MlflowHandle } from '../services/index.js';
import { poll, setupOrFail } from '../otel/real/util.js';
import { RecordingBackend } from '../bridge/helpers.js';
import { otelEmitter, paramsOf, runsTaggedAnywhere, tagsOf } from '../bridge/pipeline.js';
import { COLLECTOR_CONFIG_DIR, collectorEnv } from './helpers.js';
import type { CollectorEnv } from './helpers.js';

const STEPS = 100;
const TOKEN = 'lb-token';

let mlflow: MlflowHandle | undefined;
let jaeger: JaegerHandle | undefined;
let client: MlflowClient;

/** A sidecar (bridge-sidecar.yaml) in front of `bridgeUrl`; returns it and its OTLP/gRPC address. */
async function startSidecar(bridgeUrl: string): Promise<{ sidecar: CollectorHandle; grpc: string }> {
  const [grpc, health, telemetry] = [await freePort(), await freePort(), await freePort()];
  const env = {
    SIDECAR_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`,
    BRIDGE_ENDPOINT: bridgeUrl,
    RUNTEL_BRIDGE_TOKEN: TOKEN,
    HEALTH_CHECK_ENDPOINT: `127.0.0.1:${health}`,
    OTELCOL_TELEMETRY_HOST: '127.0.0.1',
    OTELCOL_TELEMETRY_PORT: String(telemetry),
  };
  const sidecar = await startCollector(readFileSync(join(COLLECTOR_CONFIG_DIR, 'bridge-sidecar.yaml'), 'utf8'), { env, readyUrl: `http://127.0.0.1:${health}/` });
  return { sidecar, grpc: `127.0.0.1:${grpc}` };
}

interface Topology {
  bridges: { bridge: RuntelBridge; recorder: RecordingBackend }[];
  front: CollectorHandle;
  ce: CollectorEnv;
  stop(): Promise<void>;
}

/** `count` bridges (each forwarding to MLflow and recording its events), reached over gRPC directly or through sidecars. */
async function startTopology(count: number, via: 'grpc' | 'sidecars'): Promise<Topology> {
  const bridges: Topology['bridges'] = [];
  const sidecars: CollectorHandle[] = [];
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) {
    const recorder = new RecordingBackend();
    const bridge = await createBridge({
      port: 0,
      ...(via === 'grpc' ? { grpcPort: 0 } : {}),
      token: TOKEN,
      targets: [new MlflowBackend({ trackingUri: mlflow!.url, flushIntervalMillis: 200, findExistingRuns: true }), recorder],
      log: () => undefined,
    });
    bridges.push({ bridge, recorder });
    if (via === 'grpc') {
      addresses.push(`127.0.0.1:${bridge.grpcPort!}`);
    } else {
      const { sidecar, grpc } = await startSidecar(bridge.url);
      sidecars.push(sidecar);
      addresses.push(grpc);
    }
  }
  const ce = await collectorEnv({ jaegerEndpoint: `127.0.0.1:${jaeger!.otlpGrpcPort}`, bridgeUrl: 'unused', token: TOKEN });
  const env = { ...ce.env, BRIDGES: `[${addresses.join(', ')}]`, RUNTEL_BRIDGE_TOKEN: TOKEN };
  const front = await startCollector(readFileSync(join(COLLECTOR_CONFIG_DIR, 'loadbalancing.yaml'), 'utf8'), { env, readyUrl: ce.healthUrl });
  return {
    bridges,
    front,
    ce,
    async stop() {
      await front.stop();
      await Promise.all(sidecars.map((s) => s.stop()));
      await Promise.all(bridges.map(({ bridge }) => bridge.close()));
    },
  };
}

const ready = setupOrFail(async () => {
  [mlflow, jaeger] = await Promise.all([startMlflow(), startJaeger()]);
  client = new MlflowClient({ trackingUri: mlflow.url, retryTimeoutMillis: 10_000 });
}, 300_000);

afterAll(async () => {
  await Promise.all([client?.close(), jaeger?.stop()]);
  await mlflow?.stop();
});

const value = (run: number, key: 'loss' | 'acc', step: number): number => (key === 'loss' ? 1 / (step + 1 + run) : run + step / STEPS);

describe.each([
  { name: 'straight to 3 bridges over OTLP/gRPC', count: 3, via: 'grpc' as const, RUNS: 30 },
  { name: '2 sidecars → 2 bridges over OTLP/HTTP', count: 2, via: 'sidecars' as const, RUNS: 20 },
])('loadbalancing.yaml $name → MLflow', ({ count, via, RUNS }) => {
  const EXPERIMENT = `load-balanced-${via}`;
  let topology: Topology | undefined;
  afterAll(async () => topology?.stop());

  it(`${RUNS} concurrent runs each land once in MLflow, complete, each run tree through one bridge`, async () => {
    ready();
    topology = await startTopology(count, via);
    const { bridges, front, ce } = topology;
    const emitters = Array.from({ length: RUNS }, (_, i) => otelEmitter(ce.otlpHttpUrl, `trainer-${i}`));
    const runs = emitters.map((emitter, i) => emitter.logger.startRun({ name: `run-${i}`, experiment: EXPERIMENT, config: { i, lr: 0.01 * (i + 1) } }));
    const children = new Map<number, Run>();
    for (let i = 0; i < RUNS; i += 5) children.set(i, emitters[i]!.logger.startRun({ name: `run-${i}-child`, experiment: EXPERIMENT, parent: runs[i]!, config: { child: true } }));
    for (let step = 0; step < STEPS; step++) {
      runs.forEach((run, i) => run.logMetrics({ loss: value(i, 'loss', step), acc: value(i, 'acc', step) }, { step }));
      for (const child of children.values()) child.logMetrics({ score: step }, { step });
      if (step % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const child of children.values()) await child.finish('success');
    await Promise.all(runs.map((run, i) => run.finish(i === 7 ? 'failed' : 'success')));
    await Promise.all(emitters.map((emitter) => emitter.shutdown()));
    for (const emitter of emitters) expect(emitter.processor.deliveryStats()).toMatchObject({ undelivered: 0, pending: 0 });

    const all = [...runs, ...children.values()];
    let state = '';
    const found = await poll(
      () => `${all.length} ended runs in MLflow with every point (${state})`,
      async () => {
        // One search a round (the bridges are writing to the same server).
        const experimentId = await client.getExperimentIdByName(EXPERIMENT);
        if (experimentId === undefined) return undefined;
        const stored = await client.searchRuns([experimentId], '', 'ALL');
        const out = new Map<string, MlflowRun>();
        for (const r of stored) out.set(tagsOf(r)['runtel.run_id'] ?? '', r);
        const ended = all.filter((run) => out.has(run.id) && out.get(run.id)!.info.status !== 'RUNNING').length;
        state = `${stored.length} MLflow runs, ${ended} of ${all.length} ended`;
        if (ended < all.length) return undefined;
        for (const [i, run] of runs.entries()) {
          if ((await client.getMetricHistory(out.get(run.id)!.info.run_id, 'loss')).length < STEPS) return undefined;
          if (children.has(i) && (await client.getMetricHistory(out.get(children.get(i)!.id)!.info.run_id, 'score')).length < STEPS) return undefined;
        }
        return out;
      },
      120_000,
      1_000,
    );
    for (const run of all) expect(await runsTaggedAnywhere(client, mlflow!.url, run.id), run.id).toHaveLength(1);
    const experimentId = (await client.getExperimentIdByName(EXPERIMENT))!;
    expect(await client.searchRuns([experimentId], '', 'ALL')).toHaveLength(all.length);
    for (const [i, run] of runs.entries()) {
      const stored = found.get(run.id)!;
      expect(stored.info).toMatchObject({ run_name: `run-${i}`, status: i === 7 ? 'FAILED' : 'FINISHED' });
      expect(paramsOf(stored)).toEqual({ i: String(i), lr: String(0.01 * (i + 1)) });
      for (const key of ['loss', 'acc'] as const) {
        const history = await client.getMetricHistory(stored.info.run_id, key);
        expect(history.map((p) => p.step).sort((a, b) => a - b), `run-${i} ${key}`).toEqual(Array.from({ length: STEPS }, (_, s) => s));
        expect(history.filter((p) => p.value !== value(i, key, p.step))).toEqual([]);
      }
      const child = children.get(i);
      if (child !== undefined) {
        const stored = found.get(child.id)!;
        expect(tagsOf(stored)['mlflow.parentRunId']).toBe(found.get(run.id)!.info.run_id);
        expect(stored.info.status).toBe('FINISHED');
      }
    }

    // Routing by service: each run tree went through exactly one bridge, and both had a share.
    const seen = bridges.map(({ recorder }) => new Set(recorder.events.map((e) => e.runId)));
    for (const s of seen) expect(s.size).toBeGreaterThan(0);
    for (const run of all) expect(seen.filter((s) => s.has(run.id)), run.id).toHaveLength(1);
    for (const [i, child] of children) expect(seen.findIndex((s) => s.has(child.id))).toBe(seen.findIndex((s) => s.has(runs[i]!.id)));
    console.log(`[loadbalancing ${via}] runs per bridge: ${seen.map((s) => s.size).join(' + ')}`);
    for (const { bridge } of bridges) {
      expect(bridge.stats().responses['401']).toBeUndefined();
      expect(bridge.failureCounts()).toEqual({});
    }
    expect(front.logs()).not.toMatch(/Dropping data|Exporting failed/);
  }, 300_000);
});
