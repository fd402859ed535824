// Points/s through the bridge, all cases in one run of this script, (A) and (B) on each MLflow store
// (SQLite, PostgreSQL):
// (A) OTLP as the Collector sends it (protobuf + gzip, 1024 log records a request, as
//     collector-config/agent.yaml batches, BENCH_BATCH; 8 requests in flight as its 8 consumers send, BENCH_INFLIGHT) → bridge → a real
//     MLflow: 100,000 points (10 keys × 10,000 steps) from the first POST until every point is in
//     MLflow (the bridge's MLflow sender has delivered all it took); each request is answered only
//     once what it carried is in MLflow (acknowledge after delivery). Over OTLP/HTTP, and (A-gRPC)
//     over OTLP/gRPC with gzip message compression, as the Collector's otlp exporter sends;
// (B) the server's ceiling: raw log-batch requests of 1000 metrics at the best concurrency found, for a
//     whole run as a raw client delivers one (its experiment, new on the server, and its run created and the
//     run ended inside the timing, as (A)'s are), measured before and after each round's (A) and (A-gRPC),
//     which are paired with the mean of the two. Each round also gives (B)'s log-batch requests alone, the
//     ceiling these figures were paired with before 2026-12-07 (experiments/create alone took 23–228 ms
//     on a fresh PostgreSQL server, up to 4% of a 100,000-point run);
// (C) the bridge's own cost per point with a null sink (no MLflow): (C1) in process, gunzip +
//     protobuf decode + OTLP → inputs + translation, no HTTP; (C2) the whole bridge in a process of
//     its own (bench/null-bridge.ts) with a backend that discards every event, over loopback HTTP,
//     its CPU alone counted; (C3) the same over gRPC.
// Target, on each store against that store's own (B): (A) and (A-gRPC) ≥ 0.9× (B).
// The request bodies are built before any timing, from the records runtel's OtelLogger writes
// through the real OTel JS SDK, serialized with the SDK's own ProtobufLogsSerializer (what the OTLP
// proto exporter sends; the Collector re-encodes the same messages) and gzipped with node:zlib.
// Each MLflow case gets a fresh server and store, on tmpfs when there is one, and the same warm-up
// requests before its timing (mlflow-server.ts, warmUp); with BENCH_PRIME_STEPS, a run of that many steps
// (untimed) too: through the bridge in (A), as log-batch in (B). A bridge stays up for many runs, and a
// fresh one spends its first seconds measuring the server (AdaptiveConcurrencyLimit).
// Run: npx tsx bench/bridge-ingest.ts [keys] [steps]   (needs `bash scripts/provision.sh mlflow postgres`)
// Env: BENCH_BATCH (records per request), BENCH_STORES, BENCH_WORKERS, BENCH_REPEATS (rounds, 5), BENCH_PRIME_STEPS (steps of an untimed run before each case; default 0, none), BENCH_CONCURRENCY (the bridge's MLflow sender's
// maxConcurrentRequests), BENCH_INFLIGHT (the "collector's" requests in flight) — see bench/mlflow-server.ts.

import { fork } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Agent, request as httpRequest } from 'node:http';
import { Client, Metadata, credentials, status as grpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { InMemoryLogRecordExporter, LoggerProvider } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { createBridge } from '../src/bridge/RuntelBridge.js';
import { bridgeTargetsFromEnv } from '../src/bridge/targets.js';
import { OtlpCodec } from '../src/bridge/ingest/codec.js';
import { EVENT_METRIC, EVENT_RUN_END, EVENT_RUN_START } from '../src/otel/conventions.js';
import { CountingBatchLogRecordProcessor } from '../src/otel/CountingBatchLogRecordProcessor.js';
import { OtelLogger } from '../src/otel/OtelLogger.js';
import { OtelRunTranslator } from '../src/otel/translate/OtelRunTranslator.js';
import { ceilingRunCase, describeSetup, serverSetups, warmUp, withServer } from './mlflow-server.js';
import { NullBackend } from './null-backend.js';
import type { ServerSetup } from './mlflow-server.js';

const keys = Number(process.argv[2] ?? 10);
const steps = Number(process.argv[3] ?? 10_000);
const points = keys * steps;
// Records per request: agent.yaml's batch processor sends 1024 (send_batch_size). With acknowledge-after-delivery a
// request is answered once its points are in MLflow, so what the bridge can batch is consumers × this.
const BATCH = Number(process.env.BENCH_BATCH ?? 1024);
const EXPERIMENT = 'bench-bridge';
const TIMED_RUN = 'bridge-bench';
// BENCH_PRIME_STEPS=n: each (A) is timed on a bridge that has delivered a run of keys × n points to the same
// server first (its concurrency limit has measured that server), and each (B)'s server stores as many first.
// Default 0: a fresh bridge and a fresh server are timed.
const primeSteps = Number(process.env.BENCH_PRIME_STEPS ?? 0);
const repeats = Number(process.env.BENCH_REPEATS ?? 5);
/** Servers each (B) concurrency is measured on before the best is chosen as the ceiling's. */
const CALIBRATION_SAMPLES = 3;
/** Requests in flight from the "collector": its sending_queue consumers, 8 in collector-config/. */
const inFlight = Number(process.env.BENCH_INFLIGHT ?? 8);

function fmt(v: number): string {
  return Math.round(v).toLocaleString();
}

// ---- the bodies, built once -------------------------------------------------------------------

interface Bodies {
  gzipped: Buffer[];
  /** The same messages uncompressed (gRPC compresses per message itself). */
  raw: Buffer[];
  records: number;
  rawBytes: number;
  wireBytes: number;
}

async function buildBodies(name = TIMED_RUN, runSteps = steps): Promise<Bodies> {
  const runPoints = keys * runSteps;
  const exporter = new InMemoryLogRecordExporter();
  // runtel's own processor (as startOtel sets it up), with room for every record: none is dropped.
  const processor = new CountingBatchLogRecordProcessor({ exporter, maxQueueSize: runPoints + 10_000, maxExportBatchSize: BATCH });
  const loggerProvider = new LoggerProvider({ processors: [processor] });
  const tracerProvider = new BasicTracerProvider();
  const meterProvider = new MeterProvider();
  const logger = new OtelLogger({ tracerProvider, loggerProvider, meterProvider, delivery: processor, exclusiveProcessor: processor, flushTimeoutMillis: 600_000 });
  const names = Array.from({ length: keys }, (_, k) => `metric_${k}`);
  const base = Date.now() - 3_600_000;
  const run = logger.startRun({ name, experiment: EXPERIMENT });
  for (let step = 0; step < runSteps; step++) {
    const values: Record<string, number> = {};
    for (let k = 0; k < keys; k++) values[names[k]!] = step * 0.001 + k;
    run.logMetrics(values, { step, timestamp: base + step });
  }
  await run.finish('success');
  await logger.forceFlush();
  const records = exporter.getFinishedLogRecords();
  const byEvent = new Map<string, number>();
  for (const r of records) byEvent.set(r.eventName ?? '', (byEvent.get(r.eventName ?? '') ?? 0) + 1);
  if (records[0]?.eventName !== EVENT_RUN_START || records.at(-1)?.eventName !== EVENT_RUN_END || byEvent.get(EVENT_METRIC) !== runPoints) {
    throw new Error(`unexpected records from OtelLogger: ${JSON.stringify([...byEvent])}`);
  }
  const gzipped: Buffer[] = [];
  const rawBodies: Buffer[] = [];
  let rawBytes = 0;
  for (let i = 0; i < records.length; i += BATCH) {
    const raw = ProtobufLogsSerializer.serializeRequest(records.slice(i, i + BATCH));
    if (raw === undefined) throw new Error('ProtobufLogsSerializer gave nothing');
    rawBytes += raw.length;
    rawBodies.push(Buffer.from(raw));
    gzipped.push(gzipSync(raw));
  }
  await logger.shutdown();
  await Promise.all([loggerProvider.shutdown(), tracerProvider.shutdown(), meterProvider.shutdown()]);
  return { gzipped, raw: rawBodies, records: records.length, rawBytes, wireBytes: gzipped.reduce((n, b) => n + b.length, 0) };
}

// ---- HTTP: POST as the Collector's otlphttp exporter does ---------------------------------------

const agent = new Agent({ keepAlive: true, maxSockets: 16 });

function post(url: string, body: Buffer): Promise<{ status: number; retryAfter: string | undefined; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip', 'content-length': String(body.length) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const ra = res.headers['retry-after'];
          resolve({ status: res.statusCode ?? 0, retryAfter: Array.isArray(ra) ? ra[0] : ra, text: res.statusCode === 200 ? '' : Buffer.concat(chunks).toString('latin1').slice(0, 300) });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends every body, `concurrency` at a time after the first (which carries ml.run.start); a 503 is retried after its Retry-After. */
async function sendAll(url: string, bodies: Buffer[], concurrency: number): Promise<{ retries: number; waitedMillis: number }> {
  let retries = 0;
  let waitedMillis = 0;
  const sendOne = async (body: Buffer): Promise<void> => {
    for (;;) {
      const res = await post(url, body);
      if (res.status === 200) return;
      if (res.status !== 503) throw new Error(`bridge answered ${res.status}: ${res.text}`);
      retries++;
      const wait = 1000 * Number(res.retryAfter ?? 1);
      waitedMillis += wait;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  };
  await sendOne(bodies[0]!);
  let next = 1;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length) await sendOne(bodies[next++]!);
    }),
  );
  return { retries, waitedMillis };
}

const LOGS_EXPORT = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';

/** sendAll over OTLP/gRPC: raw protobuf messages, gzip-compressed by the channel; UNAVAILABLE is retried after 1 s. */
async function sendAllGrpc(address: string, bodies: Buffer[], concurrency: number): Promise<{ retries: number; waitedMillis: number }> {
  const client = new Client(address, credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2, 'grpc.max_send_message_length': 64 << 20 });
  let retries = 0;
  let waitedMillis = 0;
  const call = (body: Buffer): Promise<ServiceError | undefined> =>
    new Promise((resolve) => client.makeUnaryRequest(LOGS_EXPORT, (b: Buffer) => b, (b: Buffer) => b, body, new Metadata(), (error) => resolve(error ?? undefined)));
  const sendOne = async (body: Buffer): Promise<void> => {
    for (;;) {
      const error = await call(body);
      if (error === undefined) return;
      if (error.code !== grpcStatus.UNAVAILABLE) throw new Error(`bridge answered gRPC ${error.code}: ${error.details}`);
      retries++;
      waitedMillis += 1000;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  };
  try {
    await sendOne(bodies[0]!);
    let next = 1;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < bodies.length) await sendOne(bodies[next++]!);
      }),
    );
  } finally {
    client.close();
  }
  return { retries, waitedMillis };
}

/** Sends a run's bodies to a bridge over `via`, as the Collector's otlphttp or otlp exporter would. */
function sendTo(via: 'http' | 'grpc', httpBase: string, grpcPort: number | undefined, bodies: Bodies): Promise<{ retries: number; waitedMillis: number }> {
  return via === 'grpc' ? sendAllGrpc(`127.0.0.1:${grpcPort!}`, bodies.raw, inFlight) : sendAll(`${httpBase}/v1/logs`, bodies.gzipped, inFlight);
}

// ---- (A) collector → bridge → MLflow ----------------------------------------------------------

interface BridgeResult {
  pointsPerSecond: number;
  postSeconds: number;
  retries: number;
  /** Share of the timed run the MLflow sender's concurrency limit spent at each level (sampled every 100 ms). */
  levels: Map<number, number>;
}

/** `4 62% · 2 23% · 1 15%`: where the concurrency limit spent the run, highest level first. */
function describeLevels(levels: Map<number, number>): string {
  const total = [...levels.values()].reduce((a, b) => a + b, 0);
  return [...levels].sort(([a], [b]) => b - a).map(([level, n]) => `${level} ${Math.round((100 * n) / total)}%`).join(' · ');
}

/** `prime`: a run the bridge delivers before the timing, to the same server (undefined: a fresh bridge is timed). */
async function bridgeCase(setup: ServerSetup, bodies: Bodies, via: 'http' | 'grpc', prime: Bodies | undefined): Promise<BridgeResult> {
  return withServer(setup, async (server, client) => {
    await warmUp(client, 'warm-up');
    const errors: string[] = [];
    // The targets the bridge would build from these options, built here so the sender's level can be read.
    const targets = bridgeTargetsFromEnv({ mlflow: { trackingUri: server.url, ...(process.env.BENCH_CONCURRENCY ? { maxConcurrentRequests: Number(process.env.BENCH_CONCURRENCY) } : {}) }, wandb: false });
    const sender = targets[0] as unknown as { stats(): { concurrencyLimit: number } };
    const bridge = await createBridge({
      port: 0,
      ...(via === 'grpc' ? { grpcPort: 0 } : {}),
      targets,
      onError: (f) => errors.push(`${f.backend}:${f.operation}: ${f.error instanceof Error ? f.error.message : String(f.error)}`),
      log: (line) => errors.push(line),
    });
    let result: BridgeResult;
    const send = (b: Bodies) => sendTo(via, bridge.url, bridge.grpcPort, b);
    try {
      if (prime !== undefined) {
        await send(prime);
        await bridge.flush();
      }
      const levels = new Map<number, number>();
      const sample = setInterval(() => {
        const level = sender.stats().concurrencyLimit;
        levels.set(level, (levels.get(level) ?? 0) + 1);
      }, 100);
      const start = performance.now();
      const sent = await send(bodies);
      const postSeconds = (performance.now() - start) / 1000;
      // Everything taken is delivered: the MLflow sender's queue drained and its last requests answered.
      await bridge.flush();
      const seconds = (performance.now() - start) / 1000;
      clearInterval(sample);
      result = { pointsPerSecond: points / seconds, postSeconds, retries: sent.retries, levels };
      const stats = bridge.stats();
      if (stats.rejectedLogRecords !== 0 || stats.queuedPoints !== 0 || Object.keys(bridge.failureCounts()).length > 0 || errors.length > 0) {
        throw new Error(`bridge: ${JSON.stringify({ stats, failures: bridge.failureCounts(), errors: errors.slice(0, 5) })}`);
      }
    } finally {
      await bridge.close();
    }
    // Outside the timing: MLflow really has every point, once.
    const experimentId = await client.getOrCreateExperiment(EXPERIMENT);
    const runs = await client.searchRuns([experimentId], '', 'ALL');
    if (runs.length !== (prime === undefined ? 1 : 2)) throw new Error(`expected ${prime === undefined ? 1 : 2} runs in MLflow, found ${runs.length}`);
    const run = runs.find((r) => r.info.run_name === TIMED_RUN);
    if (run === undefined) throw new Error(`no run ${TIMED_RUN} in MLflow`);
    let stored = 0;
    for (let k = 0; k < keys; k++) stored += (await client.getMetricHistory(run.info.run_id, `metric_${k}`)).length;
    if (stored !== points) throw new Error(`MLflow has ${stored} of ${points} points`);
    if (run.info.status !== 'FINISHED') throw new Error(`run status ${run.info.status}`);
    return result;
  });
}

// ---- (B) the server's ceiling: raw log-batch, pre-built bodies ---------------------------------

// ---- (C) the bridge's own cost, null sink -----------------------------------------------------

/** (C1) In process: gunzip + the bridge's decoding (OtlpCodec.decodeInputs) + OtelRunTranslator.logs, events to a null backend. */
function inProcessCase(bodies: Bodies): { nsPerPoint: number; pointsPerSecond: number; cpuNsPerPoint: number; parts: string } {
  const codec = new OtlpCodec();
  const translator = new OtelRunTranslator({ maxRuns: 1_000, maxSeenPointsPerRun: 100_000 });
  const sink = new NullBackend();
  const spent = { gunzip: 0n, decode: 0n, translate: 0n };
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (const body of bodies.gzipped) {
    const t0 = process.hrtime.bigint();
    const raw = gunzipSync(body);
    const t1 = process.hrtime.bigint();
    const inputs = codec.decodeInputs('logs', 'protobuf', raw).logs;
    const t2 = process.hrtime.bigint();
    for (const event of translator.logs(inputs)) sink.onEvent(event);
    const t3 = process.hrtime.bigint();
    spent.gunzip += t1 - t0;
    spent.decode += t2 - t1;
    spent.translate += t3 - t2;
  }
  const ns = Number(process.hrtime.bigint() - start);
  const used = process.cpuUsage(cpu);
  if (sink.metricPoints !== points) throw new Error(`null sink got ${sink.metricPoints} of ${points} points`);
  const per = (v: bigint): string => (Number(v) / points).toFixed(0);
  return { nsPerPoint: ns / points, pointsPerSecond: points / (ns / 1e9), cpuNsPerPoint: ((used.user + used.system) * 1000) / points, parts: `gunzip ${per(spent.gunzip)} + decode ${per(spent.decode)} + translate ${per(spent.translate)} ns` };
}

/** (C2, C3) The whole bridge in a process of its own (bench/null-bridge.ts), over loopback HTTP or gRPC, its only backend a null one; its CPU alone is the bridge's cost. */
async function nullBridgeCase(bodies: Bodies, warmUp: Bodies, via: 'http' | 'grpc'): Promise<NullBridgeResult> {
  const child = fork(fileURLToPath(new URL('./null-bridge.ts', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = (): Promise<unknown> => new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`null bridge exited (${code})`)));
  });
  try {
    const { port, grpcPort } = (await next()) as { port: string; grpcPort: number };
    const send = (b: Bodies) => sendTo(via, `http://127.0.0.1:${port}`, grpcPort, b);
    // Another run's records first (not counted), so what is measured runs compiled, as in a bridge that has been up a while.
    await send(warmUp);
    child.send('start');
    await next();
    const clientCpu = process.cpuUsage();
    const start = process.hrtime.bigint();
    const sent = await send(bodies);
    const ns = Number(process.hrtime.bigint() - start);
    const client = process.cpuUsage(clientCpu);
    child.send('stop');
    const { cpuMicros, metricPoints } = (await next()) as { cpuMicros: number; metricPoints: number };
    if (metricPoints !== points || sent.retries !== 0) throw new Error(`null bridge: ${metricPoints} of ${points} points, ${sent.retries} retries`);
    return { nsPerPoint: ns / points, pointsPerSecond: points / (ns / 1e9), cpuNsPerPoint: (cpuMicros * 1000) / points, clientCpuNsPerPoint: ((client.user + client.system) * 1000) / points };
  } finally {
    child.kill();
  }
}

interface NullBridgeResult {
  nsPerPoint: number;
  pointsPerSecond: number;
  /** The bridge process's CPU. */
  cpuNsPerPoint: number;
  /** The sending client's (this process's) CPU, for comparison. */
  clientCpuNsPerPoint: number;
}

// ---- the run ------------------------------------------------------------------------------------

const benchStart = performance.now();
const bodies = await buildBodies();
const warmUpBodies = await buildBodies('bridge-bench-warm-up');
const primeBodies = primeSteps > 0 ? await buildBodies('bridge-bench-prime', primeSteps) : undefined;
console.log(
  `  bodies: ${bodies.gzipped.length} requests of ≤${BATCH} log records (${bodies.records.toLocaleString()} records), ` +
    `${(bodies.rawBytes / 1e6).toFixed(1)} MB protobuf, ${(bodies.wireBytes / 1e6).toFixed(1)} MB gzipped`,
);

// (C) first, in this process with no server running: warm-up round, then the best of 3.
inProcessCase(bodies);
let c1 = { nsPerPoint: Infinity, pointsPerSecond: 0, cpuNsPerPoint: Infinity, parts: '' };
for (let i = 0; i < 3; i++) {
  const r = inProcessCase(bodies);
  if (r.nsPerPoint < c1.nsPerPoint) c1 = r;
}
async function bestNullBridge(via: 'http' | 'grpc'): Promise<NullBridgeResult> {
  let best: NullBridgeResult = { nsPerPoint: Infinity, pointsPerSecond: 0, cpuNsPerPoint: Infinity, clientCpuNsPerPoint: Infinity };
  for (let i = 0; i < 3; i++) {
    const r = await nullBridgeCase(bodies, warmUpBodies, via);
    if (r.cpuNsPerPoint < best.cpuNsPerPoint) best = r;
  }
  return best;
}
const c2 = await bestNullBridge('http');
const c3 = await bestNullBridge('grpc');
console.log(
  `  null sink: (C1) ${c1.nsPerPoint.toFixed(0)} ns/point, CPU ${c1.cpuNsPerPoint.toFixed(0)} (${c1.parts})  (C2) HTTP ${c2.nsPerPoint.toFixed(0)} ns/point, bridge CPU ${c2.cpuNsPerPoint.toFixed(0)}, client CPU ${c2.clientCpuNsPerPoint.toFixed(0)}  (C3) gRPC ${c3.nsPerPoint.toFixed(0)} ns/point, bridge CPU ${c3.cpuNsPerPoint.toFixed(0)}, client CPU ${c3.clientCpuNsPerPoint.toFixed(0)}`,
);

// BENCH_CASES=C: only the bridge's own cost (no MLflow).
if (process.env.BENCH_CASES === 'C') {
  agent.destroy();
  process.exit(0);
}

// Each store's ceiling concurrency, then (A) and (B) interleaved across stores. Two figures per case: its best
// round against (B)'s best, and the median over rounds of (A) against the (B) measured on both sides of it.
// MLflow's own rate drifts by up to ±25% between minutes here; a (B) before and after each round's (A) and
// (A-gRPC) cancels a steady drift, which a (B) on one side only does not, and the best-of not at all.
const setups = serverSetups();
const ceilingConcurrency = new Map<ServerSetup, number>();
for (const setup of setups) {
  let calibration = 0;
  // ×8 never beat ×1–×4 (see bench/mlflow-ingest.ts); left out to keep the run short. Each concurrency is
  // judged on the mean of CALIBRATION_SAMPLES servers: a PostgreSQL server's two workers share the keep-alive
  // connections as the kernel hands them out, and one server at ×4 stored 10,430 points/s with a 3:1 split of
  // its workers' CPU against 13,000–14,000 with an even one, so a single sample chose ×2 as the ceiling and
  // (A) then beat that "ceiling" by 1.25×. With 2 samples, 2 of 9 runs on 2026-12-07 still chose ×2 (14,924
  // and 15,173 points/s, where ×4 read 14,019 and 14,055; ×4 read 15,486–19,915 in the other 7).
  for (const concurrency of [1, 2, 4]) {
    const samples: number[] = [];
    for (let i = 0; i < CALIBRATION_SAMPLES; i++) samples.push((await ceilingRunCase(setup, keys, steps, concurrency, primeSteps)).pointsPerSecond);
    const v = samples.reduce((a, b) => a + b, 0) / samples.length;
    console.log(`  calibration (${describeSetup(setup)}): (B) ×${concurrency} ${samples.map(fmt).join(', ')}: mean ${fmt(v)}`);
    if (v > calibration) {
      calibration = v;
      ceilingConcurrency.set(setup, concurrency);
    }
  }
}
const bestA = new Map<ServerSetup, BridgeResult>(setups.map((s) => [s, { pointsPerSecond: 0, postSeconds: 0, retries: 0, levels: new Map() }]));
const bestAGrpc = new Map<ServerSetup, BridgeResult>(setups.map((s) => [s, { pointsPerSecond: 0, postSeconds: 0, retries: 0, levels: new Map() }]));
const bestB = new Map<ServerSetup, number>(setups.map((s) => [s, 0]));
const paired = new Map<ServerSetup, { http: number[]; grpc: number[] }>(setups.map((s) => [s, { http: [], grpc: [] }]));
// Every round's (A), (A-gRPC) and paired (B) summed: the pooled ratio, less moved by one server's draw of connections than a median of 5.
const sums = new Map<ServerSetup, { http: number; grpc: number; ceiling: number; logBatch: number }>(setups.map((s) => [s, { http: 0, grpc: 0, ceiling: 0, logBatch: 0 }]));
const ceiling = (setup: ServerSetup): Promise<{ pointsPerSecond: number; logBatchPointsPerSecond: number }> => ceilingRunCase(setup, keys, steps, ceilingConcurrency.get(setup)!, primeSteps);
const before = new Map<ServerSetup, { pointsPerSecond: number; logBatchPointsPerSecond: number }>();
for (const setup of setups) before.set(setup, await ceiling(setup));
for (let rep = 1; rep <= repeats; rep++) {
  for (const setup of setups) {
    // HTTP first in odd rounds, gRPC first in even ones: neither always sits next to the same (B).
    const first = rep % 2 === 1 ? 'http' : 'grpc';
    const x = await bridgeCase(setup, bodies, first, primeBodies);
    const y = await bridgeCase(setup, bodies, first === 'http' ? 'grpc' : 'http', primeBodies);
    const [a, g] = first === 'http' ? [x, y] : [y, x];
    const c0 = before.get(setup)!;
    const c1 = await ceiling(setup);
    before.set(setup, c1);
    const [b0, b1] = [c0.pointsPerSecond, c1.pointsPerSecond];
    const b = (b0 + b1) / 2;
    console.log(
      `  round ${rep} (${describeSetup(setup)}): (A) ${fmt(a.pointsPerSecond)} (all POSTs answered after ${a.postSeconds.toFixed(2)} s, ${a.retries} 503 retries; in flight ${describeLevels(a.levels)})  (A-gRPC) ${fmt(g.pointsPerSecond)} (${g.retries} UNAVAILABLE retries; ${describeLevels(g.levels)})  (B) ×${ceilingConcurrency.get(setup)} ${fmt(b0)} before, ${fmt(b1)} after (log-batch alone ${fmt(c0.logBatchPointsPerSecond)}, ${fmt(c1.logBatchPointsPerSecond)})`,
    );
    if (a.pointsPerSecond > bestA.get(setup)!.pointsPerSecond) bestA.set(setup, a);
    if (g.pointsPerSecond > bestAGrpc.get(setup)!.pointsPerSecond) bestAGrpc.set(setup, g);
    bestB.set(setup, Math.max(bestB.get(setup)!, b0, b1));
    paired.get(setup)!.http.push(a.pointsPerSecond / b);
    paired.get(setup)!.grpc.push(g.pointsPerSecond / b);
    const sum = sums.get(setup)!;
    sum.http += a.pointsPerSecond;
    sum.grpc += g.pointsPerSecond;
    sum.ceiling += b;
    sum.logBatch += (c0.logBatchPointsPerSecond + c1.logBatchPointsPerSecond) / 2;
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const sender = process.env.BENCH_CONCURRENCY ? `, the bridge's MLflow sender ${process.env.BENCH_CONCURRENCY} in flight` : '';
console.log(`\nbench/bridge-ingest: ${points.toLocaleString()} points (${keys} keys × ${steps} steps) in ${bodies.gzipped.length} OTLP requests (protobuf + gzip, ${BATCH} records each), ${inFlight} in flight${sender}; ${repeats} rounds; ${primeSteps > 0 ? `each timed after a run of ${(keys * primeSteps).toLocaleString()} points to the same server (the bridge's in (A), log-batch in (B))` : 'a fresh bridge and server timed'}; ${availableParallelism()} CPUs shared by MLflow, the bridge and this client`);
const targets: string[] = [];
for (const setup of setups) {
  const ratio = bestA.get(setup)!.pointsPerSecond / bestB.get(setup)!;
  const ratioGrpc = bestAGrpc.get(setup)!.pointsPerSecond / bestB.get(setup)!;
  const { http, grpc } = paired.get(setup)!;
  const list = (values: number[]): string => values.map((v) => v.toFixed(2)).join(' ');
  console.log(`MLflow 3.17.2 on ${describeSetup(setup)}:`);
  console.log(`${'  (A) collector → bridge → MLflow, OTLP/HTTP'.padEnd(48)} ${fmt(bestA.get(setup)!.pointsPerSecond).padStart(10)} points/s   best ${ratio.toFixed(2)}× (B); paired by round ${list(http)}, median ${median(http).toFixed(2)}×, pooled ${(sums.get(setup)!.http / sums.get(setup)!.ceiling).toFixed(2)}×`);
  console.log(`${'  (A-gRPC) the same over OTLP/gRPC'.padEnd(48)} ${fmt(bestAGrpc.get(setup)!.pointsPerSecond).padStart(10)} points/s   best ${ratioGrpc.toFixed(2)}× (B); paired by round ${list(grpc)}, median ${median(grpc).toFixed(2)}×, pooled ${(sums.get(setup)!.grpc / sums.get(setup)!.ceiling).toFixed(2)}×`);
  console.log(`${`  (B) MLflow ceiling, raw log-batch ×${ceilingConcurrency.get(setup)}`.padEnd(48)} ${fmt(bestB.get(setup)!).padStart(10)} points/s   a whole run; against its log-batch requests alone, pooled: HTTP ${(sums.get(setup)!.http / sums.get(setup)!.logBatch).toFixed(2)}×, gRPC ${(sums.get(setup)!.grpc / sums.get(setup)!.logBatch).toFixed(2)}×`);
  const verdict = (best: number, mid: number): string => `best ${best.toFixed(2)}×, paired median ${mid.toFixed(2)}× ${best >= 0.9 && mid >= 0.9 ? 'met' : mid >= 0.9 ? 'met on the paired median only' : 'NOT met'}`;
  targets.push(`${setup.store} HTTP ${verdict(ratio, median(http))}; gRPC ${verdict(ratioGrpc, median(grpc))}`);
}
console.log(`${'(C1) bridge cost, in process, null sink'.padEnd(48)} ${fmt(c1.pointsPerSecond).padStart(10)} points/s   ${c1.nsPerPoint.toFixed(0)} ns/point (gunzip + decode + translate)`);
console.log(`${'(C2) bridge over HTTP, null backend'.padEnd(48)} ${fmt(c2.pointsPerSecond).padStart(10)} points/s   ${c2.nsPerPoint.toFixed(0)} ns/point, bridge process CPU ${c2.cpuNsPerPoint.toFixed(0)} ns/point (HTTP + everything the bridge does)`);
console.log(`${'(C3) bridge over gRPC, null backend'.padEnd(48)} ${fmt(c3.pointsPerSecond).padStart(10)} points/s   ${c3.nsPerPoint.toFixed(0)} ns/point, bridge process CPU ${c3.cpuNsPerPoint.toFixed(0)} ns/point (gRPC, gunzip + everything)`);
console.log(`target: the bridge's own cost ≤ 5000 ns/point: CPU HTTP ${c2.cpuNsPerPoint.toFixed(0)} ns ${c2.cpuNsPerPoint <= 5000 ? 'met' : 'NOT met'}, gRPC ${c3.cpuNsPerPoint.toFixed(0)} ns ${c3.cpuNsPerPoint <= 5000 ? 'met' : 'NOT met'}`);
// The same goal as a ratio, which holds on a faster or slower machine: 5 µs was "one bridge core keeps up with 40 MLflow servers".
const servers = setups.map((setup) => {
  const worth = (cpuNs: number): string => (1e9 / cpuNs / bestB.get(setup)!).toFixed(0);
  return `${setup.store} HTTP ${worth(c2.cpuNsPerPoint)}×, gRPC ${worth(c3.cpuNsPerPoint)}×`;
});
console.log(`one bridge core's points/s (1 / its CPU per point) against each store's (B), goal ≥ 40×: ${servers.join('; ')}`);
console.log(`\ntarget, each store against its own (B): (A) and (A-gRPC) ≥ 0.9× (B): ${targets.join('; ')}   (total ${((performance.now() - benchStart) / 1000).toFixed(0)} s)`);
agent.destroy();
