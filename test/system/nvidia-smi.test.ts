// GPUs through nvidia-smi: the parser on nvidia-smi's CSV output (one GPU, four, `[N/A]` fields),
// MLflow's per-GPU keys from it, and the sampler running a real child process that prints such
// output (and no nvidia-smi at all: no GPU keys, no error).
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NVIDIA_SMI_ARGS, NvidiaSmi, gpuValues, parseNvidiaSmi } from '../../src/system/nvidiaSmi.js';
import { SystemCollector } from '../../src/system/collect.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'nvidia-smi');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

/** A stand-in nvidia-smi: a real executable that checks its arguments and prints `output`. */
function fakeNvidiaSmi(output: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'runtel-nvsmi-'));
  const data = join(dir, 'out.csv');
  writeFileSync(data, output);
  const script = join(dir, 'nvidia-smi');
  writeFileSync(script, `#!/bin/sh\n[ "$*" = "${NVIDIA_SMI_ARGS.join(' ')}" ] || { echo "unexpected arguments: $*" >&2; exit 2; }\ncat '${data}'\n`);
  chmodSync(script, 0o755);
  return script;
}

describe('parseNvidiaSmi', () => {
  it('reads one GPU', () => {
    expect(parseNvidiaSmi(fixture('one-gpu.csv'))).toEqual([{ index: 0, utilizationPercent: 87, memoryUsedMiB: 31245, memoryTotalMiB: 40960, powerDrawWatts: 243.17, powerLimitWatts: 400 }]);
  });

  it('reads several GPUs in index order', () => {
    const gpus = parseNvidiaSmi(fixture('four-gpus.csv'));
    expect(gpus.map((g) => g.index)).toEqual([0, 1, 2, 3]);
    expect(gpus[2]).toEqual({ index: 2, utilizationPercent: 0, memoryUsedMiB: 1, memoryTotalMiB: 24576, powerDrawWatts: 21.94, powerLimitWatts: 350 });
  });

  it('leaves out [N/A], [Not Supported] and bare N/A fields, not the GPU', () => {
    const gpus = parseNvidiaSmi(fixture('na-fields.csv'));
    expect(gpus).toEqual([
      { index: 0, utilizationPercent: undefined, memoryUsedMiB: 7, memoryTotalMiB: 15360, powerDrawWatts: undefined, powerLimitWatts: undefined },
      { index: 1, utilizationPercent: 3, memoryUsedMiB: 0, memoryTotalMiB: 4096, powerDrawWatts: undefined, powerLimitWatts: undefined },
      { index: 2, utilizationPercent: 86, memoryUsedMiB: 6144, memoryTotalMiB: 7979, powerDrawWatts: undefined, powerLimitWatts: 200 },
    ]);
  });

  it('skips lines that are not GPU rows (an error message, a header, blank lines)', () => {
    expect(parseNvidiaSmi('NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver.\n\nindex, utilization.gpu, memory.used, memory.total, power.draw, power.limit\n')).toEqual([]);
  });
});

describe('gpuValues: MLflow per-GPU keys and units', () => {
  it('gives utilization %, memory MB (10^6 bytes, as MLflow) and %, power W and % of the limit', () => {
    expect(gpuValues(parseNvidiaSmi(fixture('one-gpu.csv')))).toEqual({
      gpu_0_utilization_percentage: 87,
      gpu_0_memory_usage_megabytes: 32762.8, // 31245 MiB
      gpu_0_memory_usage_percentage: 76.3,
      gpu_0_power_usage_watts: 243.2,
      gpu_0_power_usage_percentage: 60.8,
    });
  });

  it('gives each GPU its own keys and leaves out what a GPU did not report', () => {
    const four = gpuValues(parseNvidiaSmi(fixture('four-gpus.csv')));
    expect(Object.keys(four).filter((k) => k.endsWith('_utilization_percentage'))).toEqual([0, 1, 2, 3].map((i) => `gpu_${i}_utilization_percentage`));
    const na = gpuValues(parseNvidiaSmi(fixture('na-fields.csv')));
    expect(na).toEqual({
      gpu_0_memory_usage_megabytes: 7.3,
      gpu_0_memory_usage_percentage: 0,
      gpu_1_utilization_percentage: 3,
      gpu_1_memory_usage_megabytes: 0,
      gpu_1_memory_usage_percentage: 0,
      gpu_2_utilization_percentage: 86,
      gpu_2_memory_usage_megabytes: 6442.5,
      gpu_2_memory_usage_percentage: 77,
    });
  });
});

describe('the collector with an nvidia-smi process', () => {
  it('adds system/gpu_<i>_* keys from what nvidia-smi printed', async () => {
    const collector = new SystemCollector({ gpuTimeoutMillis: 5000, loopResolutionMillis: 20, gpus: new NvidiaSmi(fakeNvidiaSmi(fixture('four-gpus.csv'))) });
    try {
      const values = await collector.sample();
      expect(values['system/gpu_3_utilization_percentage']).toBe(45);
      expect(values['system/gpu_0_power_usage_watts']).toBe(341.5);
      expect(Object.keys(values).filter((k) => k.startsWith('system/gpu_'))).toHaveLength(20);
      expect(values['system/system_memory_usage_megabytes']).toBeGreaterThan(0);
    } finally {
      collector.close();
    }
  });

  it('samples without GPU keys, and stops asking, when there is no nvidia-smi', async () => {
    const gpus = new NvidiaSmi(join(tmpdir(), 'no-such-dir', 'nvidia-smi'));
    const collector = new SystemCollector({ gpuTimeoutMillis: 5000, loopResolutionMillis: 20, gpus });
    try {
      // CPU utilization is a rate since the collector was made, over the kernel's 10 ms CPU-time ticks:
      // a sample taken sooner has no CPU key (it failed here once, sampled within a tick).
      await new Promise((resolve) => setTimeout(resolve, 50));
      const values = await collector.sample();
      expect(Object.keys(values).some((k) => k.startsWith('system/gpu_'))).toBe(false);
      expect(values['system/cpu_utilization_percentage']).toBeGreaterThanOrEqual(0);
      expect(gpus.available).toBe(false);
    } finally {
      collector.close();
    }
  });

  it('gives up on an nvidia-smi that hangs, within its timeout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-nvsmi-'));
    const script = join(dir, 'nvidia-smi');
    writeFileSync(script, '#!/bin/sh\nsleep 30\n');
    chmodSync(script, 0o755);
    const started = Date.now();
    expect(await new NvidiaSmi(script).read(300)).toEqual([]);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
