// The names system samples go by outside MLflow: OpenTelemetry's semantic conventions (host,
// process, V8/Node.js and hardware metrics) and W&B's system metrics (the keys W&B's own monitor
// writes to a run's events stream). A sample is keyed by MLflow's names; these derive from it.

import type { Attributes } from '@opentelemetry/api';
import { availableParallelism } from 'node:os';
import { SYSTEM_PREFIX } from './collect.js';

/** One OTel series a sample value becomes: instrument name, unit, attributes, and the factor from MLflow's unit. */
export interface OtelSystemSeries {
  name: string;
  unit: string;
  kind: 'gauge' | 'counter';
  attributes: Attributes;
  factor: number;
}

const PERCENT = 0.01;
const MEGA = 1e6;
const MILLI = 1e-3;

const HOST: Record<string, OtelSystemSeries> = {
  cpu_utilization_percentage: { name: 'system.cpu.utilization', unit: '1', kind: 'gauge', attributes: {}, factor: PERCENT },
  system_memory_usage_megabytes: { name: 'system.memory.usage', unit: 'By', kind: 'gauge', attributes: { 'system.memory.state': 'used' }, factor: MEGA },
  system_memory_usage_percentage: { name: 'system.memory.utilization', unit: '1', kind: 'gauge', attributes: { 'system.memory.state': 'used' }, factor: PERCENT },
  disk_usage_megabytes: { name: 'system.filesystem.usage', unit: 'By', kind: 'gauge', attributes: { 'system.filesystem.state': 'used', 'system.filesystem.mountpoint': '/' }, factor: MEGA },
  disk_available_megabytes: { name: 'system.filesystem.usage', unit: 'By', kind: 'gauge', attributes: { 'system.filesystem.state': 'free', 'system.filesystem.mountpoint': '/' }, factor: MEGA },
  disk_usage_percentage: { name: 'system.filesystem.utilization', unit: '1', kind: 'gauge', attributes: { 'system.filesystem.state': 'used', 'system.filesystem.mountpoint': '/' }, factor: PERCENT },
  network_receive_megabytes: { name: 'system.network.io', unit: 'By', kind: 'counter', attributes: { 'network.io.direction': 'receive' }, factor: MEGA },
  network_transmit_megabytes: { name: 'system.network.io', unit: 'By', kind: 'counter', attributes: { 'network.io.direction': 'transmit' }, factor: MEGA },
  // Semantic conventions: process CPU time over elapsed time and the number of CPUs (MLflow's is per core).
  process_cpu_percentage: { name: 'process.cpu.utilization', unit: '1', kind: 'gauge', attributes: {}, factor: PERCENT / availableParallelism() },
  process_memory_rss_megabytes: { name: 'process.memory.usage', unit: 'By', kind: 'gauge', attributes: {}, factor: MEGA },
  process_heap_used_megabytes: { name: 'v8js.memory.heap.used', unit: 'By', kind: 'gauge', attributes: {}, factor: MEGA },
  event_loop_delay_p99_milliseconds: { name: 'nodejs.eventloop.delay.p99', unit: 's', kind: 'gauge', attributes: {}, factor: MILLI },
  event_loop_delay_max_milliseconds: { name: 'nodejs.eventloop.delay.max', unit: 's', kind: 'gauge', attributes: {}, factor: MILLI },
};

const GPU: Record<string, Omit<OtelSystemSeries, 'attributes'>> = {
  utilization_percentage: { name: 'hw.gpu.utilization', unit: '1', kind: 'gauge', factor: PERCENT },
  memory_usage_megabytes: { name: 'hw.gpu.memory.usage', unit: 'By', kind: 'gauge', factor: MEGA },
  memory_usage_percentage: { name: 'hw.gpu.memory.utilization', unit: '1', kind: 'gauge', factor: PERCENT },
  power_usage_watts: { name: 'hw.power', unit: 'W', kind: 'gauge', factor: 1 },
};

const GPU_KEY = /^gpu_(\d+)_(.+)$/;

/** The OTel series of one `system/<name>` key, or undefined for a key with no semantic-convention home (GPU power percentage). */
export function otelSystemSeries(key: string): OtelSystemSeries | undefined {
  if (!key.startsWith(SYSTEM_PREFIX)) return undefined;
  const name = key.slice(SYSTEM_PREFIX.length);
  const host = HOST[name];
  if (host !== undefined) return host;
  const gpu = GPU_KEY.exec(name);
  const series = gpu === null ? undefined : GPU[gpu[2]!];
  if (series === undefined) return undefined;
  return { ...series, attributes: { 'hw.id': `gpu_${gpu![1]}`, 'hw.type': 'gpu' } };
}

/** Every OTel instrument a sample may feed, for registering them up front. */
export function otelSystemInstruments(): Array<Pick<OtelSystemSeries, 'name' | 'unit' | 'kind'>> {
  const seen = new Map<string, Pick<OtelSystemSeries, 'name' | 'unit' | 'kind'>>();
  for (const s of [...Object.values(HOST), ...Object.values(GPU)]) seen.set(s.name, { name: s.name, unit: s.unit, kind: s.kind });
  return [...seen.values()];
}

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/**
 * A sample as a line of W&B's events stream (`wandb-events.jsonl`), with W&B's system metric keys
 * and units (MiB, GiB, bytes since the run's first sample) and its `_wandb`/`_timestamp`/`_runtime`.
 */
export function wandbSystemRow(values: Record<string, number>, timestamp: number, startTime: number, networkBase: { receive?: number; transmit?: number }): Record<string, number | boolean> {
  const v = (name: string): number | undefined => values[SYSTEM_PREFIX + name];
  const row: Record<string, number | boolean> = {};
  const set = (key: string, value: number | undefined, scale = 1): void => {
    if (value !== undefined && Number.isFinite(value)) row[`system.${key}`] = Math.round(value * scale * 1000) / 1000;
  };
  const cores = availableParallelism();
  const processCpu = v('process_cpu_percentage');
  set('cpu', processCpu === undefined ? undefined : processCpu / cores);
  set('memory_percent', v('system_memory_usage_percentage'));
  set('proc.memory.rssMB', v('process_memory_rss_megabytes'), MEGA / MIB);
  set('proc.memory.percent', v('process_memory_percentage'));
  const used = v('system_memory_usage_megabytes');
  const percent = v('system_memory_usage_percentage');
  if (used !== undefined && percent !== undefined && percent > 0) set('proc.memory.availableMB', (used / (percent / 100) - used) * (MEGA / MIB));
  set('disk./.usagePercent', v('disk_usage_percentage'));
  set('disk./.usageGB', v('disk_usage_megabytes'), MEGA / GIB);
  const recv = v('network_receive_megabytes');
  const sent = v('network_transmit_megabytes');
  if (recv !== undefined) set('network.recv', (recv - (networkBase.receive ??= recv)) * MEGA);
  if (sent !== undefined) set('network.sent', (sent - (networkBase.transmit ??= sent)) * MEGA);
  for (const key in values) {
    const gpu = GPU_KEY.exec(key.slice(SYSTEM_PREFIX.length));
    if (gpu === null) continue;
    const [, i, what] = gpu;
    const value = values[key];
    if (what === 'utilization_percentage') set(`gpu.${i}.gpu`, value);
    else if (what === 'memory_usage_percentage') set(`gpu.${i}.memoryAllocated`, value);
    else if (what === 'memory_usage_megabytes') set(`gpu.${i}.memoryAllocatedBytes`, value, MEGA);
    else if (what === 'power_usage_watts') set(`gpu.${i}.powerWatts`, value);
    else if (what === 'power_usage_percentage') set(`gpu.${i}.powerPercent`, value);
  }
  // runtel's own, under W&B's process prefix.
  set('proc.memory.heapUsedMB', v('process_heap_used_megabytes'), MEGA / MIB);
  set('proc.eventloop.delayP99Ms', v('event_loop_delay_p99_milliseconds'));
  set('proc.eventloop.delayMaxMs', v('event_loop_delay_max_milliseconds'));
  row._wandb = true;
  row._timestamp = timestamp / 1000;
  row._runtime = Math.max(0, (timestamp - startTime) / 1000);
  return row;
}
