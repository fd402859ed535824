// One machine sample in MLflow's names and units (`system/<name>`, as mlflow/system_metrics logs
// them), plus what a Node trainer needs: the process's RSS and V8 heap, and event-loop delay.
// /proc is read synchronously: the kernel generates it from memory (no disk to wait for), a read
// takes ~0.1 ms and a tenth of the CPU of an asynchronous one. statfs (the root filesystem may be a
// network mount) and nvidia-smi (a child process) never block.

import { cpus, freemem, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { IntervalHistogram } from 'node:perf_hooks';
import { sep } from 'node:path';
import { NvidiaSmi, gpuValues, round1 } from './nvidiaSmi.js';

export const SYSTEM_PREFIX = 'system/';

interface CpuTimes {
  idle: number;
  total: number;
}

function cpuTimes(): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const cpu of cpus()) {
    const t = cpu.times;
    idle += t.idle;
    total += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  return { idle, total };
}

/** Used and total memory in bytes. Linux: total − MemAvailable (what `free` calls used); elsewhere total − free. */
function memory(): { used: number; total: number } {
  const total = totalmem();
  try {
    const meminfo = readFileSync('/proc/meminfo', 'utf8');
    const available = /^MemAvailable:\s+(\d+) kB/m.exec(meminfo);
    if (available !== null) return { used: total - Number(available[1]) * 1024, total };
  } catch {
    // Not Linux.
  }
  return { used: total - freemem(), total };
}

/** Bytes received and sent on every interface since boot (as psutil.net_io_counters sums them); undefined off Linux. */
function network(): { received: number; sent: number } | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/net/dev', 'utf8');
  } catch {
    return undefined;
  }
  let received = 0;
  let sent = 0;
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const cols = line.slice(colon + 1).trim().split(/\s+/);
    received += Number(cols[0]) || 0;
    sent += Number(cols[8]) || 0;
  }
  return { received, sent };
}

export interface SystemCollectorOptions {
  /** Gives up on nvidia-smi after this long (a hung driver must not stall sampling). */
  gpuTimeoutMillis: number;
  /** Reads GPUs; default: `nvidia-smi` on PATH. */
  gpus?: NvidiaSmi;
  /** Tick of the event-loop delay monitor. */
  loopResolutionMillis: number;
}

/**
 * Samples since the previous sample (CPU and event-loop delay are rates over the interval). Call
 * `sample()` at most once at a time; `close()` stops the event-loop monitor.
 */
export class SystemCollector {
  private _cpu = cpuTimes();
  private _processCpu = process.cpuUsage();
  private _wall = performance.now();
  private readonly _loop: IntervalHistogram;
  private readonly _gpus: NvidiaSmi;
  private readonly _gpuTimeoutMillis: number;

  constructor(options: SystemCollectorOptions) {
    this._gpus = options.gpus ?? new NvidiaSmi();
    this._gpuTimeoutMillis = options.gpuTimeoutMillis;
    // A libuv timer of its own records how late each tick fires (every tick is a wake-up: 100 ms costs
    // ~0.06% of a core, 20 ms ~0.35%, measured on the 2-core reference machine).
    this._loop = monitorEventLoopDelay({ resolution: options.loopResolutionMillis });
    this._loop.enable();
  }

  /** The values for one `system_metrics` event, keyed `system/<name>`. */
  async sample(): Promise<Record<string, number>> {
    const gpus = this._gpus.read(this._gpuTimeoutMillis);
    const disk = await statfs(sep).catch(() => undefined);
    const mem = memory();
    const net = network();
    const values: Record<string, number> = {};

    const cpu = cpuTimes();
    const total = cpu.total - this._cpu.total;
    if (total > 0) values.cpu_utilization_percentage = round1(100 * (1 - (cpu.idle - this._cpu.idle) / total));
    this._cpu = cpu;

    values.system_memory_usage_megabytes = round1(mem.used / 1e6);
    values.system_memory_usage_percentage = round1((mem.used / mem.total) * 100);

    if (disk !== undefined) {
      // psutil.disk_usage: used = (blocks − bfree) · bsize, free = bavail · bsize, percent of used + free.
      const used = (disk.blocks - disk.bfree) * disk.bsize;
      const free = disk.bavail * disk.bsize;
      values.disk_usage_percentage = used + free > 0 ? round1((used / (used + free)) * 100) : 0;
      values.disk_usage_megabytes = round1(used / 1e6);
      values.disk_available_megabytes = round1(free / 1e6);
    }
    if (net !== undefined) {
      values.network_receive_megabytes = round1(net.received / 1e6);
      values.network_transmit_megabytes = round1(net.sent / 1e6);
    }

    // The process: CPU as psutil's Process.cpu_percent (100 = one core busy), memory, heap, event loop.
    const now = performance.now();
    const usage = process.cpuUsage(this._processCpu);
    const wallMicros = (now - this._wall) * 1000;
    if (wallMicros > 0) values.process_cpu_percentage = round1((100 * (usage.user + usage.system)) / wallMicros);
    this._processCpu = process.cpuUsage();
    this._wall = now;
    const memoryUsage = process.memoryUsage();
    values.process_memory_rss_megabytes = round1(memoryUsage.rss / 1e6);
    values.process_memory_percentage = round1((memoryUsage.rss / mem.total) * 100);
    values.process_heap_used_megabytes = round1(memoryUsage.heapUsed / 1e6);
    if (this._loop.count > 0) {
      values.event_loop_delay_p99_milliseconds = round1(this._loop.percentile(99) / 1e6);
      values.event_loop_delay_max_milliseconds = round1(this._loop.max / 1e6);
    }
    this._loop.reset();

    Object.assign(values, gpuValues(await gpus));
    const prefixed: Record<string, number> = {};
    for (const key in values) prefixed[SYSTEM_PREFIX + key] = values[key]!;
    return prefixed;
  }

  close(): void {
    this._loop.disable();
  }
}
