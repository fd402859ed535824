// runtel's `system/*` keys are MLflow's: every name the installed MLflow's own monitors log (its
// mlflow/system_metrics/metrics/{cpu,disk,network,gpu}_monitor.py, read from the provisioned venv)
// is one runtel's sampler produces, the GPU ones from nvidia-smi's output.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { mlflowPython } from '../services/index.js';
import { SystemCollector } from '../../src/system/collect.js';
import { NvidiaSmi, gpuValues, parseNvidiaSmi } from '../../src/system/nvidiaSmi.js';

function mlflowMonitorNames(monitor: string): string[] {
  const dir = execFileSync(mlflowPython(), ['-c', 'import os, mlflow.system_metrics.metrics as m; print(os.path.dirname(m.__file__))'], { encoding: 'utf8' }).trim();
  const source = readFileSync(join(dir, `${monitor}.py`), 'utf8');
  return [...new Set([...source.matchAll(/_metrics\[f?"([a-z0-9_{}]+)"\]/g)].map((m) => m[1]!.replace('{i}', '0')))].sort();
}

describe("MLflow's system metric names (its installed source)", () => {
  it('runtel samples every name of the cpu, disk and network monitors', async () => {
    const names = ['cpu_monitor', 'disk_monitor', 'network_monitor'].flatMap(mlflowMonitorNames);
    expect(names.length).toBeGreaterThanOrEqual(8);
    const collector = new SystemCollector({ gpuTimeoutMillis: 1000, loopResolutionMillis: 20, gpus: new NvidiaSmi('/nonexistent/nvidia-smi') });
    try {
      await new Promise((r) => setTimeout(r, 50));
      const keys = Object.keys(await collector.sample());
      for (const name of names) expect(keys, name).toContain(`system/${name}`);
    } finally {
      collector.close();
    }
  }, 120_000);

  it("runtel gives every name of the NVIDIA GPU monitor from nvidia-smi's output", () => {
    const names = mlflowMonitorNames('gpu_monitor');
    expect(names).toContain('gpu_0_utilization_percentage');
    const fixture = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'nvidia-smi', 'one-gpu.csv'), 'utf8');
    const keys = Object.keys(gpuValues(parseNvidiaSmi(fixture)));
    for (const name of names) expect(keys, name).toContain(name);
  }, 120_000);
});
