// GPUs through `nvidia-smi`: one query per sample, parsed into MLflow's per-GPU numbers. No
// nvidia-smi on PATH (or one that fails) means no GPUs, never an error.

import { execFile } from 'node:child_process';

/** The fields asked for, in this order (`nvidia-smi --help-query-gpu` documents them). */
export const NVIDIA_SMI_FIELDS = ['index', 'utilization.gpu', 'memory.used', 'memory.total', 'power.draw', 'power.limit'] as const;
export const NVIDIA_SMI_ARGS = [`--query-gpu=${NVIDIA_SMI_FIELDS.join(',')}`, '--format=csv,noheader,nounits'];

/** One GPU's reading; a field nvidia-smi reports as `[N/A]` or `[Not Supported]` is undefined. */
export interface GpuReading {
  index: number;
  utilizationPercent: number | undefined;
  memoryUsedMiB: number | undefined;
  memoryTotalMiB: number | undefined;
  powerDrawWatts: number | undefined;
  powerLimitWatts: number | undefined;
}

function field(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const text = raw.trim();
  // `[N/A]`, `[Not Supported]`, `[Unknown Error]`, `N/A`: not measured on this GPU.
  if (text === '' || text.startsWith('[') || /^n\/a$/i.test(text)) return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

/** Parses `--format=csv,noheader,nounits` output of {@link NVIDIA_SMI_ARGS}; lines that are not GPU rows are skipped. */
export function parseNvidiaSmi(output: string): GpuReading[] {
  const gpus: GpuReading[] = [];
  for (const line of output.split(/\r?\n/)) {
    const cells = line.split(',');
    if (cells.length !== NVIDIA_SMI_FIELDS.length) continue;
    const index = field(cells[0]);
    if (index === undefined || !Number.isInteger(index) || index < 0) continue;
    gpus.push({
      index,
      utilizationPercent: field(cells[1]),
      memoryUsedMiB: field(cells[2]),
      memoryTotalMiB: field(cells[3]),
      powerDrawWatts: field(cells[4]),
      powerLimitWatts: field(cells[5]),
    });
  }
  return gpus;
}

const MIB = 1024 * 1024;

/** MLflow's per-GPU keys (without `system/`) for the readings, in MLflow's units and rounding. */
export function gpuValues(gpus: readonly GpuReading[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const gpu of gpus) {
    const p = `gpu_${gpu.index}_`;
    if (gpu.utilizationPercent !== undefined) out[`${p}utilization_percentage`] = gpu.utilizationPercent;
    if (gpu.memoryUsedMiB !== undefined) {
      out[`${p}memory_usage_megabytes`] = round1((gpu.memoryUsedMiB * MIB) / 1e6);
      if (gpu.memoryTotalMiB !== undefined && gpu.memoryTotalMiB > 0) out[`${p}memory_usage_percentage`] = round1((gpu.memoryUsedMiB / gpu.memoryTotalMiB) * 100);
    }
    if (gpu.powerDrawWatts !== undefined) {
      out[`${p}power_usage_watts`] = round1(gpu.powerDrawWatts);
      if (gpu.powerLimitWatts !== undefined && gpu.powerLimitWatts > 0) out[`${p}power_usage_percentage`] = round1((gpu.powerDrawWatts / gpu.powerLimitWatts) * 100);
    }
  }
  return out;
}

export function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

/**
 * Runs nvidia-smi; resolves `[]` when it is missing, fails or takes longer than `timeoutMillis`.
 * After the first failure because it is not installed, it is not tried again (`available` false).
 */
export class NvidiaSmi {
  available = true;
  private readonly _command: string;

  constructor(command = process.env.RUNTEL_NVIDIA_SMI ?? 'nvidia-smi') {
    this._command = command;
  }

  read(timeoutMillis: number): Promise<GpuReading[]> {
    if (!this.available) return Promise.resolve([]);
    return new Promise((resolve) => {
      const child = execFile(this._command, NVIDIA_SMI_ARGS, { timeout: timeoutMillis, windowsHide: true }, (error, stdout) => {
        if (error !== null) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') this.available = false;
          resolve([]);
          return;
        }
        resolve(parseNvidiaSmi(stdout));
      });
      // A slow nvidia-smi must not keep a finished program alive.
      child.unref();
      for (const pipe of [child.stdout, child.stderr]) (pipe as unknown as { unref?: () => void } | null)?.unref?.();
    });
  }
}
