// Cost of one logMetrics point into InMemory and JSONL, against an empty call measured in the same
// run. Targets on the 2-core reference machine: ≥ 1,000,000 points/s into InMemory, ≥ 200,000 into JSONL.
// Run: npx tsx bench/hot-path.ts [points]

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InMemoryLogger, JsonlLogger } from '../src/index.js';
import type { LogMetricsOptions, Run } from '../src/index.js';

const points = Number(process.argv[2] ?? 1_000_000);

interface Result {
  name: string;
  nsPerPoint: number;
  pointsPerSecond: number;
}

let sink = 0;
// The baseline: a call with the same arguments that does nothing useful.
function emptyCall(values: Record<string, number>, options?: LogMetricsOptions): void {
  sink += options?.step ?? 0;
  for (const key in values) sink += values[key]!;
}

function loop(fn: (values: Record<string, number>, options: LogMetricsOptions) => void, keysPerCall: number, n: number): number {
  const keys = Array.from({ length: keysPerCall }, (_, i) => `metric_${i}`);
  const start = process.hrtime.bigint();
  for (let step = 0; step < n / keysPerCall; step++) {
    const values: Record<string, number> = {};
    for (const key of keys) values[key] = step * 0.001;
    fn(values, { step });
  }
  return Number(process.hrtime.bigint() - start);
}

async function measure(name: string, keysPerCall: number, make: () => { run: Run; done: () => Promise<void> } | undefined): Promise<Result> {
  // Warm up the JIT on a short run first.
  for (const n of [points / 10, points]) {
    const target = make();
    const call = target === undefined ? emptyCall : target.run.logMetrics.bind(target.run);
    const start = process.hrtime.bigint();
    loop(call, keysPerCall, n);
    if (target !== undefined) await target.done();
    const ns = Number(process.hrtime.bigint() - start);
    if (n === points) return { name, nsPerPoint: ns / n, pointsPerSecond: (n / ns) * 1e9 };
  }
  throw new Error('unreachable');
}

const results: Result[] = [];
for (const keysPerCall of [1, 10]) {
  const suffix = keysPerCall === 1 ? '1 key/call' : `${keysPerCall} keys/call`;
  results.push(await measure(`empty call (${suffix})`, keysPerCall, () => undefined));
  results.push(
    await measure(`InMemoryLogger (${suffix})`, keysPerCall, () => {
      const logger = new InMemoryLogger();
      const run = logger.startRun();
      return { run, done: () => run.finish() };
    }),
  );
  const dirs: string[] = [];
  results.push(
    await measure(`JsonlLogger, until on disk (${suffix})`, keysPerCall, () => {
      const dir = mkdtempSync(join(tmpdir(), 'runtel-bench-'));
      dirs.push(dir);
      const logger = new JsonlLogger({ dir });
      const run = logger.startRun();
      return { run, done: async () => { await run.finish(); await logger.shutdown(); } };
    }),
  );
  const last = dirs[dirs.length - 1]!;
  const bytes = statSync(join(last, (await import('node:fs')).readdirSync(last)[0]!, 'events.jsonl')).size;
  console.log(`  (JSONL file for ${points.toLocaleString()} points: ${(bytes / 1e6).toFixed(1)} MB)`);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

console.log(`\nbench/hot-path: ${points.toLocaleString()} points, Node ${process.version}`);
console.log('case'.padEnd(42), 'ns/point'.padStart(10), 'points/s'.padStart(14), 'vs empty call'.padStart(14));
for (let i = 0; i < results.length; i += 3) {
  const base = results[i]!;
  for (const r of results.slice(i, i + 3)) {
    console.log(r.name.padEnd(42), r.nsPerPoint.toFixed(1).padStart(10), Math.round(r.pointsPerSecond).toLocaleString().padStart(14), `${(r.nsPerPoint / base.nsPerPoint).toFixed(1)}×`.padStart(14));
  }
}
const memory = results[1]!.pointsPerSecond;
const jsonl = results[2]!.pointsPerSecond;
console.log(`\ntargets (1 key/call): InMemory ≥ 1,000,000 points/s: ${memory >= 1e6 ? 'met' : 'NOT met'}; JSONL ≥ 200,000 points/s: ${jsonl >= 2e5 ? 'met' : 'NOT met'}`);
if (sink === 42) console.log('');
