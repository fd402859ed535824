// The bridge's decoding of OTLP/protobuf log requests, per record, in CPU time (process.cpuUsage,
// so a loaded machine inflates it less than wall time): the wire reader it uses (otlpProtobuf.ts)
// against the baseline in the same run, protobufjs's schema decoder plus the object adapter
// (otlpInputs.ts, still the path for OTLP/JSON); and the translator on the result.
// Bodies: 100,000 `ml.metric` records written by OtelLogger, serialized by the SDK's
// ProtobufLogsSerializer, 512 a request. Run: npx tsx bench/bridge-decode.ts
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { InMemoryLogRecordExporter, LoggerProvider } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { OtelLogger } from '../src/otel/OtelLogger.js';
import { CountingBatchLogRecordProcessor } from '../src/otel/CountingBatchLogRecordProcessor.js';
import { logInputsFromProtobuf } from '../src/bridge/ingest/otlpProtobuf.js';
import { OtlpCodec } from '../src/bridge/ingest/codec.js';
import { logInputsFromOtlp } from '../src/otel/translate/otlpInputs.js';
import { OtelRunTranslator } from '../src/otel/translate/OtelRunTranslator.js';
const points = 100_000;
const exporter = new InMemoryLogRecordExporter();
const processor = new CountingBatchLogRecordProcessor({ exporter, maxQueueSize: points + 10_000, maxExportBatchSize: 512 });
const logger = new OtelLogger({ tracerProvider: new BasicTracerProvider(), loggerProvider: new LoggerProvider({ processors: [processor] }), meterProvider: new MeterProvider(), delivery: processor, exclusiveProcessor: processor, flushTimeoutMillis: 600_000 });
const run = logger.startRun({ name: 'x', experiment: 'x' });
for (let s = 0; s < 10_000; s++) { const v: Record<string, number> = {}; for (let k = 0; k < 10; k++) v[`metric_${k}`] = s * 0.001 + k; run.logMetrics(v, { step: s }); }
await run.finish(); await logger.forceFlush();
const recs = exporter.getFinishedLogRecords();
const bodies: Buffer[] = [];
for (let i = 0; i < recs.length; i += 512) bodies.push(Buffer.from(ProtobufLogsSerializer.serializeRequest(recs.slice(i, i + 512))!));
const codec = new OtlpCodec();
const cpu = (fn: () => void): number => { const a = process.cpuUsage(); fn(); const d = process.cpuUsage(a); return ((d.user + d.system) * 1000) / recs.length; };
let best = { fast: Infinity, old: Infinity, translate: Infinity };
for (let rep = 0; rep < 5; rep++) {
  const fast = cpu(() => { for (const b of bodies) logInputsFromProtobuf(b); });
  const old = cpu(() => { for (const b of bodies) logInputsFromOtlp(codec.decode('logs', 'protobuf', b)); });
  const inputs = bodies.map((b) => logInputsFromProtobuf(b));
  const tr = new OtelRunTranslator({ maxRuns: 1000, maxSeenPointsPerRun: 100_000 });
  const translate = cpu(() => { for (const i of inputs) tr.logs(i); });
  best = { fast: Math.min(best.fast, fast), old: Math.min(best.old, old), translate: Math.min(best.translate, translate) };
}
console.log(`bench/bridge-decode: ${recs.length.toLocaleString()} records in ${bodies.length} requests, best of 5, CPU ns per record`);
console.log(`  wire reader (the bridge)             ${best.fast.toFixed(0).padStart(6)}   ${(best.old / best.fast).toFixed(1)}× faster than the baseline`);
console.log(`  protobufjs decode + adapter          ${best.old.toFixed(0).padStart(6)}   (baseline)`);
console.log(`  translator on the wire reader's     ${best.translate.toFixed(0).padStart(6)}`);
