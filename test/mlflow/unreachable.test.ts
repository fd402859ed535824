// A dead or hung MLflow must not hold a training process: once shutdown has passed its flush
// deadline nothing runtel holds keeps the process alive; the first failure is reported when it
// happens (where, what, "retrying in the background"), and what was not delivered is counted and
// reported in one line at shutdown, while the JSONL store keeps every point.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listRuns } from '../../src/index.js';
import { freePort } from '../services/index.js';

const child = fileURLToPath(new URL('../fixtures/unreachable-mlflow-child.mjs', import.meta.url));

function runChild(env: Record<string, string>): Promise<{ code: number | null; stderr: string; millis: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const proc = spawn(process.execPath, [child], { env: { ...process.env, RUNTEL_EXIT_HANDLERS: 'true', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // A hang past this is the bug: the 10-minute retry window would keep it alive.
    const killer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    proc.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stderr, millis: Date.now() - t0 });
    });
  });
}

/** A server that accepts connections and never answers (a hung proxy or server). */
async function hungServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('an unreachable MLflow', () => {
  it.each([
    ['refuses connections', 'refused'],
    ['accepts connections and never answers', 'hung'],
  ])('that %s: the process exits at the flush deadline, says why when it happens, and counts what it could not deliver', async (_what, kind) => {
    const hung = kind === 'hung' ? await hungServer() : undefined;
    const port = hung?.port ?? (await freePort());
    const dir = mkdtempSync(join(tmpdir(), 'runtel-unreachable-'));
    try {
      const result = await runChild({
        MLFLOW_TRACKING_URI: `http://runtel:secret@127.0.0.1:${port}`,
        RUNTEL_DIR: dir,
        RUNTEL_BACKENDS: 'jsonl,mlflow',
        RUNTEL_FLUSH_TIMEOUT_MILLIS: '2000',
      });
      expect(result.code, result.stderr).toBe(0);
      // finish() and shutdown() each wait at most the 2 s deadline; then the process ends.
      expect(result.millis).toBeLessThan(9000);
      const lines = result.stderr.split('\n');
      const resolvedAt = lines.findIndex((l) => l.startsWith('shutdown resolved'));
      expect(resolvedAt).toBeGreaterThan(0);
      expect(Number(lines[resolvedAt]!.split(' ')[2])).toBeLessThan(7000);
      // Nothing ran after shutdown resolved: the process ended there.
      expect(lines.slice(resolvedAt + 1).join('')).toBe('');
      if (kind === 'refused') {
        // Reported when it happened (before shutdown), naming the target without credentials, the error, and that it retries.
        const notice = lines.findIndex((l) => /retrying in the background/.test(l));
        expect(notice).toBeGreaterThanOrEqual(0);
        expect(notice).toBeLessThan(resolvedAt);
        expect(lines[notice]).toMatch(new RegExp(`MLflow http://127\\.0\\.0\\.1:${port}/.*ECONNREFUSED.*retrying in the background for up to 10 min \\(RUNTEL_RETRY_TIMEOUT_MILLIS\\)`));
      }
      const undelivered = lines.find((l) => /not delivered within the 2000 ms flush deadline/.test(l));
      expect(undelivered).toMatch(/10 metric point\(s\) of 1 run\(s\) not delivered/);
      expect(undelivered).toMatch(/runtel sync --to mlflow/);
      expect(result.stderr).not.toContain('secret');
      // The local run log has every point.
      const runs = listRuns(dir);
      expect(runs).toHaveLength(1);
      expect(runs[0]!.record.metrics.loss).toHaveLength(10);
      expect(runs[0]!.record.status).toBe('success');
    } finally {
      await hung?.close();
    }
  }, 90_000);

  it('the retry window comes from RUNTEL_RETRY_TIMEOUT_MILLIS; a window that is not positive is an error naming the variable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-unreachable-'));
    const port = await freePort();
    const env = { MLFLOW_TRACKING_URI: `http://127.0.0.1:${port}`, RUNTEL_DIR: dir, RUNTEL_BACKENDS: 'jsonl,mlflow', RUNTEL_FLUSH_TIMEOUT_MILLIS: '20000' };
    // A 300 ms window: the create is given up at once, reported, and nothing waits for the 20 s deadline.
    const short = await runChild({ ...env, RUNTEL_RETRY_TIMEOUT_MILLIS: '300' });
    expect(short.code, short.stderr).toBe(0);
    expect(short.millis).toBeLessThan(10_000);
    expect(short.stderr).toMatch(/backend mlflow failed in create-run: MLflow unreachable ECONNREFUSED/);
    const zero = await runChild({ ...env, RUNTEL_RETRY_TIMEOUT_MILLIS: '0' });
    expect(zero.code).toBe(1);
    expect(zero.stderr).toMatch(/retryTimeoutMillis \(RUNTEL_RETRY_TIMEOUT_MILLIS\) must be greater than 0, got 0/);
  }, 60_000);
});
