// A long-lived bridge forgets finished runs: 20,000 short runs through it into an MLflow sender
// keep its memory and its time per request flat (the sender once kept every run it had seen, and
// scanned them all on every request it sent). See test/fixtures/bridge-many-runs.mjs.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const fixture = fileURLToPath(new URL('../fixtures/bridge-many-runs.mjs', import.meta.url));

interface Checkpoint {
  runs: number;
  heapMiB: number;
  msPerRequest: number;
}

describe('a bridge taking 20,000 short runs', () => {
  it('keeps its memory and per-request cost flat once the runs it remembers are at their bounds', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--expose-gc', fixture, '2000,10000,20000'], { maxBuffer: 1 << 20, timeout: 240_000 }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)));
    });
    const { checkpoints, stats } = JSON.parse(out.trim().split('\n').pop()!) as { checkpoints: Checkpoint[]; stats: number };
    console.log(`[bridge many runs] ${checkpoints.map((c) => `${c.runs} runs: heap ${c.heapMiB.toFixed(1)} MiB, ${c.msPerRequest.toFixed(2)} ms/request`).join('; ')}`);
    expect(stats).toBe(60_000); // every run's start, point and end went to the target
    const [early, mid, late] = checkpoints as [Checkpoint, Checkpoint, Checkpoint];
    // Between 10,000 and 20,000 runs (every bound reached) the heap does not grow with the runs seen.
    expect(late.heapMiB - mid.heapMiB).toBeLessThan(5);
    expect(late.heapMiB - early.heapMiB).toBeLessThan(15);
    // The cost of a request does not grow with the runs seen.
    expect(late.msPerRequest).toBeLessThan(2 * early.msPerRequest + 1);
  }, 300_000);
});
