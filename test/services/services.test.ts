// The provisioned services start on free loopback ports, answer, and stop. No skips: a missing
// service fails here (run `bash scripts/provision.sh` first; the test command does).
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  MLFLOW_STORES,
  freePort,
  mlflowPython,
  requireBinary,
  startCollector,
  startJaeger,
  startMlflow,
  startPostgres,
  startPrometheus,
  pidAlive,
  wandbPython,
} from './index.js';

async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const result = await fn();
  console.log(`[services] ${label} ready in ${Math.round(performance.now() - t0)} ms`);
  return result;
}

async function poll<T>(fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('helpers', () => {
  it('freePort gives distinct bindable loopback ports', async () => {
    const a = await freePort();
    const b = await freePort();
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(a, '127.0.0.1', resolve));
    expect((server.address() as AddressInfo).port).toBe(a);
    await new Promise((resolve) => server.close(resolve));
  });

  it('requireBinary points into the cache and throws a provisioning hint for an unknown binary', () => {
    for (const name of ['jaeger', 'otelcol-runtel', 'prometheus', 'promtool', 'mlflow', 'initdb', 'postgres', 'psql', 'chromium']) {
      expect(existsSync(requireBinary(name))).toBe(true);
    }
    expect(() => requireBinary('no-such-service')).toThrow(/not provisioned.*scripts\/provision\.sh/);
  });

  it('the MLflow and wandb venvs have the pinned packages (and MLflow the PostgreSQL driver SQLAlchemy uses)', () => {
    const mlflowVersion = execFileSync(mlflowPython(), ['-c', 'import mlflow; print(mlflow.__version__)'], { encoding: 'utf8' });
    expect(mlflowVersion.trim()).toMatch(/^3\.\d+\.\d+$/);
    const driver = execFileSync(mlflowPython(), ['-c', 'import sqlalchemy.dialects.postgresql as pg; print(pg.dialect.driver, pg.dialect.import_dbapi().__name__)'], { encoding: 'utf8' });
    expect(driver.trim()).toBe('psycopg psycopg');
    const wandbVersion = execFileSync(wandbPython(), ['-c', 'import wandb; print(wandb.__version__)'], { encoding: 'utf8' });
    expect(wandbVersion.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  }, 60_000);
});

describe('Jaeger v2', () => {
  it('answers the query API, accepts OTLP/HTTP and shows the service', async () => {
    const jaeger = await timed('jaeger', () => startJaeger());
    try {
      const services = await fetch(`${jaeger.queryUrl}/api/services`);
      expect(services.status).toBe(200);
      const body = (await services.json()) as { data: unknown };
      expect(body).toHaveProperty('data');

      const now = BigInt(Date.now()) * 1_000_000n;
      const exported = await fetch(`${jaeger.otlpHttpUrl}/v1/traces`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          resourceSpans: [
            {
              resource: { attributes: [{ key: 'service.name', value: { stringValue: 'services-test' } }] },
              scopeSpans: [
                {
                  scope: { name: 'services-test' },
                  spans: [
                    {
                      traceId: '5b8efff798038103d269b633813fc60c',
                      spanId: 'eee19b7ec3c1b174',
                      name: 'probe',
                      kind: 1,
                      startTimeUnixNano: String(now - 1_000_000n),
                      endTimeUnixNano: String(now),
                    },
                  ],
                },
              ],
            },
          ],
        }),
      });
      expect(exported.status).toBe(200);
      const names = await poll(async () => {
        const res = await fetch(`${jaeger.queryUrl}/api/services`);
        const json = (await res.json()) as { data: string[] | null };
        return json.data?.includes('services-test') ? json.data : undefined;
      }, 15_000);
      expect(names).toContain('services-test');
    } finally {
      await jaeger.stop();
    }
    expect(pidAlive(jaeger.pid)).toBe(false);
  });

  it('two instances run side by side on different ports', async () => {
    const [a, b] = await Promise.all([startJaeger(), startJaeger()]);
    try {
      expect(a.queryUrl).not.toBe(b.queryUrl);
      expect(a.otlpGrpcPort).not.toBe(b.otlpGrpcPort);
      for (const j of [a, b]) expect((await fetch(`${j.queryUrl}/api/services`)).status).toBe(200);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('OpenTelemetry Collector (otelcol-runtel)', () => {
  async function minimalConfig(): Promise<{ yaml: string; otlpPort: number; healthPort: number }> {
    const otlpPort = await freePort();
    const healthPort = await freePort();
    const yaml = `
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${otlpPort}
exporters:
  debug: {}
extensions:
  health_check:
    endpoint: 127.0.0.1:${healthPort}
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
`;
    return { yaml, otlpPort, healthPort };
  }

  it('starts with a health_check probe, accepts OTLP/HTTP, restarts and stops', async () => {
    const { yaml, otlpPort, healthPort } = await minimalConfig();
    const healthUrl = `http://127.0.0.1:${healthPort}/`;
    const collector = await timed('otelcol-runtel', () => startCollector(yaml, { readyUrl: healthUrl }));
    const firstPid = collector.pid;
    try {
      const health = await fetch(healthUrl);
      expect(health.status).toBe(200);
      expect(((await health.json()) as { status: string }).status).toBe('Server available');

      const accepted = await fetch(`http://127.0.0.1:${otlpPort}/v1/traces`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ resourceSpans: [] }),
      });
      expect(accepted.status).toBe(200);

      await timed('otelcol-runtel restart', () => collector.restart());
      expect(collector.pid).not.toBe(firstPid);
      expect(pidAlive(firstPid)).toBe(false);
      expect((await fetch(healthUrl)).status).toBe(200);
    } finally {
      await collector.stop();
    }
    expect(pidAlive(collector.pid)).toBe(false);
  });

  it('without readyUrl it waits for "Everything is ready" and reports bad configs with the log', async () => {
    const { yaml, healthPort } = await minimalConfig();
    const collector = await startCollector(yaml);
    try {
      expect(collector.logs()).toContain('Everything is ready');
      expect((await fetch(`http://127.0.0.1:${healthPort}/`)).status).toBe(200);
    } finally {
      await collector.stop();
    }
    await expect(startCollector('receivers: { nope: {} }\n', { timeoutMs: 20_000 })).rejects.toThrow(/exited before it was ready[\s\S]*nope/);
  });
});

describe('Prometheus', () => {
  it('is ready and scrapes the given target', async () => {
    const target = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end('# TYPE runtel_probe gauge\nruntel_probe 42\n');
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const targetPort = (target.address() as AddressInfo).port;
    const prom = await timed('prometheus', () => startPrometheus({ scrapeTargets: [`127.0.0.1:${targetPort}`], scrapeIntervalSeconds: 1 }));
    try {
      expect((await fetch(`${prom.url}/-/ready`)).status).toBe(200);
      const value = await poll(async () => {
        const res = await fetch(`${prom.url}/api/v1/query?query=runtel_probe`);
        const json = (await res.json()) as { data: { result: Array<{ value: [number, string] }> } };
        return json.data.result[0]?.value[1];
      }, 20_000);
      expect(value).toBe('42');
    } finally {
      await prom.stop();
      await new Promise((resolve) => target.close(resolve));
    }
    expect(pidAlive(prom.pid)).toBe(false);
  });
});

/** The real uid of a process. */
function uidOf(pid: number): number {
  return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

describe('PostgreSQL', () => {
  it('a throwaway cluster on a free loopback port: password auth, an unprivileged server, stop() ends it', async () => {
    const [a, b] = await Promise.all([timed('postgres', () => startPostgres()), startPostgres({ database: 'other' })]);
    try {
      expect(a.port).not.toBe(b.port);
      expect(a.url).toMatch(/^postgresql:\/\/runtel:[^@]+@127\.0\.0\.1:\d+\/mlflow$/);
      expect((await a.sql('SELECT current_database()')).trim()).toBe('mlflow');
      expect((await b.sql('SELECT current_database()')).trim()).toBe('other');
      expect((await a.sql("SELECT setting FROM pg_settings WHERE name = 'listen_addresses'")).trim()).toBe('127.0.0.1');
      // PostgreSQL refuses root: as root, the server runs as the package's postgres account.
      if (process.getuid?.() === 0) expect(uidOf(a.pid)).not.toBe(0);
      // A wrong password is refused.
      const wrong = a.url.replace(/:[^:@]+@/, ':wrong@');
      const refused = await new Promise<string>((resolve) => {
        execFile(requireBinary('psql'), [wrong, '-c', 'SELECT 1'], { env: { ...process.env, PGCONNECT_TIMEOUT: '5' } }, (error, _out, stderr) => resolve(error ? stderr : 'accepted'));
      });
      expect(refused).toMatch(/password authentication failed/);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    expect(pidAlive(a.pid)).toBe(false);
    expect(pidAlive(b.pid)).toBe(false);
  });
});

describe.each(MLFLOW_STORES)('MLflow (%s store)', (store) => {
  it('answers /health, keeps its store across restart(), and stops', async () => {
    const mlflow = await timed(`mlflow (${store})`, () => startMlflow({ store }));
    try {
      const health = await fetch(`${mlflow.url}/health`);
      expect(health.status).toBe(200);
      expect((await health.text()).trim()).toBe('OK');

      const created = await fetch(`${mlflow.url}/api/2.0/mlflow/experiments/create`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'services-test' }),
      });
      expect(created.status).toBe(200);
      const { experiment_id: id } = (await created.json()) as { experiment_id: string };

      const before = mlflow.pid;
      await timed('mlflow restart', () => mlflow.restart());
      expect(mlflow.pid).not.toBe(before);
      const got = await fetch(`${mlflow.url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=services-test`);
      expect(got.status).toBe(200);
      expect(((await got.json()) as { experiment: { experiment_id: string } }).experiment.experiment_id).toBe(id);
      expect(mlflow.store).toBe(store);
      if (store === 'postgres') {
        // The experiment is in the PostgreSQL database, which stayed up across the restart.
        expect(mlflow.backendStoreUri).toBe(mlflow.postgres!.url);
        expect((await mlflow.postgres!.sql("SELECT name FROM experiments WHERE name = 'services-test'")).trim()).toBe('services-test');
      } else {
        expect(mlflow.backendStoreUri).toMatch(/^sqlite:\/\/\//);
        expect(mlflow.postgres).toBeUndefined();
      }
    } finally {
      await mlflow.stop();
    }
    expect(pidAlive(mlflow.pid)).toBe(false);
    if (mlflow.postgres !== undefined) expect(pidAlive(mlflow.postgres.pid)).toBe(false);
  }, 300_000);
});
