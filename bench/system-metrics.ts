// What system-metrics sampling costs: CPU time of this process (and of the nvidia-smi children it
// waits for) while a run is sampled, against the same process idle, in interleaved windows of the
// same length in the same run. Target: < 1% of one core at the default interval (10 s).
//
// Two measurements:
//   - at the default interval, directly (windows of --seconds, default 30: slow, few samples);
//   - per sample, at a fast interval (100 ms), then projected to the default interval.
// Each with and without a stand-in nvidia-smi printing four GPUs (a GPU machine spawns it every
// sample; here no machine has one).
//
// Run: npx tsx bench/system-metrics.ts [--seconds 30] [--rounds 2]

import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InMemoryLogger } from '../src/index.js';
import { DEFAULT_SYSTEM_METRICS_INTERVAL_MILLIS } from '../src/system/options.js';

const arg = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(`--${name}`);
  return at < 0 ? fallback : Number(process.argv[at + 1]);
};
const windowSeconds = arg('seconds', 30);
const rounds = arg('rounds', 2);
const FAST_MILLIS = 100;
const FAST_SECONDS = 5;

// Linux clock ticks per second (getconf CLK_TCK): 100 on every kernel config Node runs on.
const TICKS = 100;

/** CPU seconds of this process (user + system) and of its waited-for children (from /proc/self/stat). */
function cpuSeconds(): { self: number; children: number } {
  const usage = process.cpuUsage();
  let children = 0;
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 16 and 17 of proc(5) (cutime, cstime) are at 13 and 14 after the command name.
    children = (Number(fields[13]) + Number(fields[14])) / TICKS;
  } catch {
    // not Linux: children not counted
  }
  return { self: (usage.user + usage.system) / 1e6, children };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds used during `seconds` of wall time, sampling a run at `intervalMillis` (or idle when undefined). */
async function window(seconds: number, intervalMillis: number | undefined): Promise<{ cpu: number; samples: number }> {
  const logger = intervalMillis === undefined ? undefined : new InMemoryLogger({ systemMetrics: true, systemMetricsIntervalMillis: intervalMillis });
  const before = cpuSeconds();
  const run = logger?.startRun({ name: 'bench' });
  await sleep(seconds * 1000);
  await run?.finish();
  const after = cpuSeconds();
  const samples = logger?.backend.events.filter((e) => e.type === 'system_metrics').length ?? 0;
  await logger?.shutdown();
  return { cpu: after.self - before.self + (after.children - before.children), samples };
}

async function compare(label: string, seconds: number, intervalMillis: number): Promise<{ perSampleMs: number; coreShare: number; samples: number }> {
  let idle = 0;
  let sampled = 0;
  let samples = 0;
  for (let i = 0; i < rounds; i++) {
    idle += (await window(seconds, undefined)).cpu;
    const w = await window(seconds, intervalMillis);
    sampled += w.cpu;
    samples += w.samples;
  }
  const extra = Math.max(0, sampled - idle);
  const coreShare = extra / (seconds * rounds);
  const perSampleMs = samples === 0 ? NaN : (extra / samples) * 1000;
  console.log(`${label}: idle ${(idle * 1000).toFixed(1)} ms CPU, sampled ${(sampled * 1000).toFixed(1)} ms CPU over ${seconds * rounds} s, ${samples} samples → ${perSampleMs.toFixed(2)} ms a sample, ${(coreShare * 100).toFixed(3)}% of a core`);
  return { perSampleMs, coreShare, samples };
}

function standInNvidiaSmi(): string {
  const fixture = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures', 'nvidia-smi', 'four-gpus.csv');
  const dir = mkdtempSync(join(tmpdir(), 'runtel-bench-nvsmi-'));
  const script = join(dir, 'nvidia-smi');
  writeFileSync(script, `#!/bin/sh\ncat '${fixture}'\n`);
  chmodSync(script, 0o755);
  return script;
}

const results: string[] = [];
// Warm up: module loading and the JIT are not the sampler's steady cost.
await window(1, FAST_MILLIS);
for (const gpus of [false, true]) {
  if (gpus) process.env.RUNTEL_NVIDIA_SMI = standInNvidiaSmi();
  else process.env.RUNTEL_NVIDIA_SMI = join(tmpdir(), 'no-nvidia-smi-here');
  const what = gpus ? 'with a stand-in nvidia-smi (4 GPUs)' : 'without GPUs';
  const fast = await compare(`every ${FAST_MILLIS} ms, ${what}`, FAST_SECONDS, FAST_MILLIS);
  const projected = fast.perSampleMs / DEFAULT_SYSTEM_METRICS_INTERVAL_MILLIS;
  const direct = await compare(`every ${DEFAULT_SYSTEM_METRICS_INTERVAL_MILLIS} ms, ${what}`, windowSeconds, DEFAULT_SYSTEM_METRICS_INTERVAL_MILLIS);
  results.push(`${what}: ${fast.perSampleMs.toFixed(2)} ms CPU a sample → ${(projected * 100).toFixed(3)}% of a core projected at 10 s; measured at 10 s: ${(direct.coreShare * 100).toFixed(3)}% (${direct.samples} samples)`);
}
console.log('\nsummary (target < 1% of one core at the default interval):');
for (const line of results) console.log(`  ${line}`);
