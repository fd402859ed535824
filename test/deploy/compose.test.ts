// docker-compose.yml and what it mounts, checked with real tools where there is one (no Docker
// engine runs here):
// - `docker-compose config` (Debian's docker-compose, which validates against the Compose file
//   schema it ships; install it with `bash scripts/provision-deploy-tools.sh`);
// - `promtool check config` for deploy/prometheus/prometheus.yml, and `promtool check rules` for
//   every PromQL expression of the Grafana dashboard;
// - the Grafana provisioning and dashboard parsed here: datasource uids, metric names, mounts.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { requireBinary } from '../services/index.js';
import { REPO_ROOT, runCommand } from './helpers.js';

const COMPOSE_FILE = join(REPO_ROOT, 'docker-compose.yml');
const DASHBOARD = join(REPO_ROOT, 'deploy/grafana/dashboards/ml-runs.json');
const DATASOURCES = join(REPO_ROOT, 'deploy/grafana/provisioning/datasources/datasources.yaml');
const DASHBOARD_PROVIDERS = join(REPO_ROOT, 'deploy/grafana/provisioning/dashboards/dashboards.yaml');
const PROMETHEUS_CONFIG = join(REPO_ROOT, 'deploy/prometheus/prometheus.yml');

const tmp = mkdtempSync(join(tmpdir(), 'runtel-deploy-compose-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** An environment without the variables docker-compose.yml reads, so its defaults apply. */
function composeEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('COMPOSE_') || key.startsWith('DOCKER_')) delete env[key];
  for (const key of ['RUNTEL_BRIDGE_TOKEN', 'RUNTEL_EXPERIMENT', 'GRAFANA_ADMIN_PASSWORD', 'MLFLOW_DB_PASSWORD', 'MLFLOW_WORKERS']) delete env[key];
  return { ...env, ...extra };
}

async function dockerCompose(args: string[], env = composeEnv()) {
  let result;
  try {
    result = await runCommand('docker-compose', ['--project-directory', REPO_ROOT, '-f', COMPOSE_FILE, ...args], { env, timeoutMs: 60_000 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('docker-compose is not installed: run `bash scripts/provision-deploy-tools.sh` (it installs Debian\'s docker-compose package)');
    }
    throw err;
  }
  return result;
}

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return -- parsed YAML/JSON documents */
let resolved: any; // `docker-compose config` output
let resolvedDemo: any; // the same with --profile demo
const raw: any = parse(readFileSync(COMPOSE_FILE, 'utf8'));

beforeAll(async () => {
  const plain = await dockerCompose(['config']);
  if (plain.code !== 0) throw new Error(`docker-compose config failed (${plain.code}):\n${plain.stderr}`);
  resolved = parse(plain.stdout);
  const demo = await dockerCompose(['--profile', 'demo', 'config']);
  if (demo.code !== 0) throw new Error(`docker-compose --profile demo config failed (${demo.code}):\n${demo.stderr}`);
  resolvedDemo = parse(demo.stdout);
}, 120_000);

describe('docker-compose.yml (docker-compose config)', () => {
  it('is a valid Compose file: `docker-compose config -q` exits 0 without warnings', async () => {
    const result = await dockerCompose(['config', '-q']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('has the stack services, and the trainer only in the demo profile', () => {
    // (Compose 1.29's `config` lists every service, with its profiles.)
    const all = ['bridge', 'grafana', 'jaeger', 'mlflow', 'otel-collector', 'postgres', 'prometheus', 'trainer'];
    expect(Object.keys(resolved.services).sort()).toEqual(all);
    expect(Object.keys(resolvedDemo.services).sort()).toEqual(all);
    for (const name of all) expect(resolved.services[name].profiles, name).toEqual(name === 'trainer' ? ['demo'] : undefined);
  });

  it('every file and build context it uses exists', () => {
    const services = { ...resolvedDemo.services } as Record<string, any>;
    let binds = 0;
    for (const [name, svc] of Object.entries(services)) {
      for (const volume of svc.volumes ?? []) {
        const source: string | undefined = typeof volume === 'string' ? volume.split(':')[0] : volume.type === 'bind' ? volume.source : undefined;
        if (source === undefined || !isAbsolute(source)) continue; // named volumes
        binds++;
        expect(existsSync(source), `${name} mounts ${source}`).toBe(true);
      }
      if (svc.build !== undefined) {
        const context = resolve(REPO_ROOT, typeof svc.build === 'string' ? svc.build : svc.build.context);
        expect(statSync(join(context, typeof svc.build === 'object' && svc.build.dockerfile ? svc.build.dockerfile : 'Dockerfile')).isFile(), `${name} build`).toBe(true);
      }
    }
    expect(binds).toBeGreaterThanOrEqual(4);
  });

  it('the collector runs collector-config/agent.yaml, set through the variables the file reads', () => {
    const collector = resolved.services['otel-collector'];
    const mount: string = (collector.volumes as any[]).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`)).find((v: string) => v.includes('agent.yaml'))!;
    expect(mount).toBeDefined();
    expect(mount.split(':')[0]).toBe(join(REPO_ROOT, 'collector-config/agent.yaml'));
    const target = mount.split(':')[1];
    expect(collector.command.join(' ')).toContain(target);
    const read = new Set([...readFileSync(join(REPO_ROOT, 'collector-config/agent.yaml'), 'utf8').matchAll(/\$\{env:([A-Z0-9_]+)/g)].map((m) => m[1]));
    for (const key of Object.keys(collector.environment)) expect(read, `agent.yaml does not read ${key}`).toContain(key);
    expect(collector.environment).toMatchObject({ JAEGER_ENDPOINT: 'jaeger:4317', BRIDGE_ENDPOINT: 'http://bridge:4320' });
    // The same token on both sides.
    expect(collector.environment.RUNTEL_BRIDGE_TOKEN).toBe(resolved.services.bridge.environment.RUNTEL_BRIDGE_TOKEN);
  });

  it('the bridge is built from this repository and points at the MLflow service', () => {
    const bridge = resolved.services.bridge;
    expect(bridge.environment).toMatchObject({ MLFLOW_TRACKING_URI: 'http://mlflow:5000' });
    expect(bridge.environment.RUNTEL_BRIDGE_TOKEN).toBeTruthy();
    const token = 'secret-from-env';
    return dockerCompose(['config'], composeEnv({ RUNTEL_BRIDGE_TOKEN: token })).then((r) => {
      const cfg = parse(r.stdout);
      expect(cfg.services.bridge.environment.RUNTEL_BRIDGE_TOKEN).toBe(token);
      expect(cfg.services['otel-collector'].environment.RUNTEL_BRIDGE_TOKEN).toBe(token);
    });
  });

  it('MLflow keeps runs in the postgres service (a volume, a health check) with several workers, and artifacts in a volume', async () => {
    const { mlflow, postgres } = resolved.services;
    // PostgreSQL: its data on a named volume, healthy once it answers, not published.
    const pgVolume = (postgres.volumes as any[]).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`)).find((v: string) => v.endsWith(':/var/lib/postgresql/data') || v.includes(':/var/lib/postgresql/data:'));
    expect(pgVolume?.split(':')[0]).toBe('postgres-data');
    expect(Object.keys(resolved.volumes)).toEqual(expect.arrayContaining(['postgres-data', 'mlflow-artifacts']));
    expect(postgres.healthcheck.test).toEqual(['CMD', 'pg_isready', '-U', postgres.environment.POSTGRES_USER, '-d', postgres.environment.POSTGRES_DB]);
    expect(postgres.ports).toBeUndefined();
    // MLflow: started once PostgreSQL is healthy, its store URI from the environment naming that
    // service, user, password and database.
    expect(mlflow.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    const store = new URL(mlflow.environment.MLFLOW_BACKEND_STORE_URI);
    expect(store.protocol).toBe('postgresql:');
    expect({ host: store.hostname, port: store.port, user: store.username, password: store.password, db: store.pathname.slice(1) }).toEqual({
      host: 'postgres',
      port: '5432',
      user: postgres.environment.POSTGRES_USER,
      password: postgres.environment.POSTGRES_PASSWORD,
      db: postgres.environment.POSTGRES_DB,
    });
    expect(mlflow.command.join(' ')).not.toMatch(/--backend-store-uri|sqlite/);
    const workers = Number(/--workers=(\d+)/.exec(mlflow.command.join(' '))?.[1]);
    expect(workers).toBeGreaterThan(1);
    // Artifacts in a named volume, where --artifacts-destination points.
    const destination = /--artifacts-destination=(\S+)/.exec(mlflow.command.join(' '))![1];
    expect((mlflow.volumes as any[]).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`))).toContainEqual(expect.stringMatching(new RegExp(`^mlflow-artifacts:${destination}(:|$)`)));
    // The password and the worker count come from the environment.
    const custom = parse((await dockerCompose(['config'], composeEnv({ MLFLOW_DB_PASSWORD: 's3cret', MLFLOW_WORKERS: '8' }))).stdout);
    expect(new URL(custom.services.mlflow.environment.MLFLOW_BACKEND_STORE_URI).password).toBe('s3cret');
    expect(custom.services.postgres.environment.POSTGRES_PASSWORD).toBe('s3cret');
    expect(custom.services.mlflow.command).toContain('--workers=8');
    // The MLflow image has the driver SQLAlchemy uses for postgresql:// (psycopg 3), at the version the tests run.
    const dockerfile = readFileSync(join(REPO_ROOT, 'deploy/mlflow/Dockerfile'), 'utf8');
    const provision = readFileSync(join(REPO_ROOT, 'scripts/provision.sh'), 'utf8');
    expect(dockerfile).toContain(`"psycopg[binary]==${/^PSYCOPG_VERSION=(\S+)/m.exec(provision)![1]}"`);
    expect(dockerfile).toContain(`"mlflow==${/^MLFLOW_VERSION=(\S+)/m.exec(provision)![1]}"`);
  });

  it('the trainer runs the demo against the collector over OTLP/HTTP', () => {
    const trainer = resolvedDemo.services.trainer;
    expect(trainer.command.slice(0, 3)).toEqual(['node', 'dist/cli/main.js', 'demo']);
    expect(trainer.environment).toMatchObject({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318', RUNTEL_EXPERIMENT: 'iris-softmax' });
  });

  it('publishes ports on 127.0.0.1 only', () => {
    for (const [name, svc] of Object.entries(raw.services as Record<string, any>)) {
      for (const port of svc.ports ?? []) expect(String(port), name).toMatch(/^127\.0\.0\.1:/);
    }
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  it('builds with npm ci + build and serves the bridge on 0.0.0.0', () => {
    expect(dockerfile).toMatch(/^RUN npm ci\b/m);
    expect(dockerfile).toMatch(/npm run build/);
    expect(dockerfile).toMatch(/^CMD \["node", "dist\/cli\/main\.js", "bridge", "serve", "--host", "0\.0\.0\.0"\]$/m);
  });
  it('copies only files that exist and that .dockerignore lets through', () => {
    const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const copied = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    expect(copied.sort()).toEqual(['package-lock.json', 'package.json', 'src', 'tsconfig.build.json', 'tsconfig.json']);
    for (const path of copied) {
      expect(existsSync(join(REPO_ROOT, path)), path).toBe(true);
      expect(ignored, path).not.toContain(path);
    }
  });
});

describe('Prometheus config (promtool)', () => {
  it('`promtool check config` accepts deploy/prometheus/prometheus.yml', async () => {
    const result = await runCommand(requireBinary('promtool'), ['check', 'config', PROMETHEUS_CONFIG], { timeoutMs: 30_000 });
    expect(result.stdout + result.stderr).toMatch(/SUCCESS/);
    expect(result.code).toBe(0);
  });

  it('scrapes the collector\'s prometheus exporter where agent.yaml puts it', () => {
    const prom = parse(readFileSync(PROMETHEUS_CONFIG, 'utf8'));
    const targets: string[] = prom.scrape_configs.flatMap((j: any) => j.static_configs.flatMap((s: any) => s.targets));
    const agent = readFileSync(join(REPO_ROOT, 'collector-config/agent.yaml'), 'utf8');
    const port = /PROMETHEUS_EXPORTER_ENDPOINT:-0\.0\.0\.0:(\d+)\}/.exec(agent)![1];
    expect(targets).toContain(`otel-collector:${port}`);
    const mounts = (resolved.services.prometheus.volumes as any[]).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`));
    expect(mounts.some((m: string) => m.startsWith(`${PROMETHEUS_CONFIG}:/etc/prometheus/prometheus.yml`))).toBe(true);
  });
});

describe('Grafana provisioning and the "ML runs" dashboard', () => {
  const datasources: any[] = parse(readFileSync(DATASOURCES, 'utf8')).datasources;
  const dashboard: any = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
  const byUid = new Map(datasources.map((d) => [d.uid as string, d]));

  /** Every datasource reference in the dashboard: panels, their targets, template variables. */
  function refs(): Array<{ where: string; ref: { type: string; uid: string } }> {
    const out: Array<{ where: string; ref: { type: string; uid: string } }> = [];
    for (const panel of dashboard.panels) {
      if (panel.type === 'row') continue;
      out.push({ where: `panel ${panel.title}`, ref: panel.datasource });
      for (const t of panel.targets ?? []) out.push({ where: `panel ${panel.title} target ${t.refId}`, ref: t.datasource ?? panel.datasource });
    }
    for (const v of dashboard.templating.list) if (v.datasource !== undefined) out.push({ where: `variable ${v.name}`, ref: v.datasource });
    return out;
  }

  const promExprs = (): string[] =>
    dashboard.panels.flatMap((p: any) => (p.targets ?? []).filter((t: any) => (t.datasource ?? p.datasource)?.type === 'prometheus').map((t: any) => t.expr as string));

  it('provisions Prometheus and Jaeger at their compose service URLs', () => {
    expect(datasources.map((d) => [d.type, d.url])).toEqual([
      ['prometheus', 'http://prometheus:9090'],
      ['jaeger', 'http://jaeger:16686'],
    ]);
    expect(new Set(datasources.map((d) => d.uid)).size).toBe(datasources.length);
  });

  it('every datasource the dashboard references is provisioned, with the same type', () => {
    const all = refs();
    expect(all.length).toBeGreaterThan(8);
    for (const { where, ref } of all) {
      expect(ref, where).toBeDefined();
      expect(byUid.has(ref.uid), `${where}: uid ${ref.uid}`).toBe(true);
      expect(byUid.get(ref.uid).type, where).toBe(ref.type);
    }
    expect(new Set(all.map((r) => r.ref.uid))).toEqual(new Set(byUid.keys())); // both are used
  });

  it('is "ML runs": metric curves per run from ml_metric, runs by status from ml_runs_total, durations from ml_run_duration_seconds', () => {
    expect(dashboard.title).toBe('ML runs');
    const exprs = promExprs();
    const metricsUsed = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(ml_[a-z_]+)\b/g)].map((m) => m[1]!)));
    // Only the names the collector's prometheus exporter gives runtel's instruments (docs/semantic-conventions.md).
    const known = ['ml_metric', 'ml_run_step', 'ml_runs_total', 'ml_run_duration_seconds_bucket', 'ml_run_duration_seconds_sum', 'ml_run_duration_seconds_count'];
    const labels = ['ml_metric_key', 'ml_run_id', 'ml_run_name', 'ml_experiment_name', 'ml_run_status'];
    for (const name of metricsUsed) expect([...known, ...labels], name).toContain(name);
    for (const name of ['ml_metric', 'ml_runs_total', 'ml_run_step', 'ml_run_duration_seconds_bucket', 'ml_run_duration_seconds_sum', 'ml_run_duration_seconds_count']) {
      expect(metricsUsed, name).toContain(name);
    }
    const panel = (title: string) => dashboard.panels.find((p: any) => p.title === title);
    const curves = panel('$key');
    expect(curves.repeat).toBe('key');
    expect(curves.targets[0].expr).toMatch(/^ml_metric\{/);
    expect(curves.targets[0].legendFormat).toBe('{{ml_run_name}}');
    expect(panel('Runs by status').targets[0].expr).toMatch(/sum by \(ml_run_status\) \(ml_runs_total\{/);
    expect(panel('Run durations').targets[0].expr).toMatch(/ml_run_duration_seconds_bucket/);
    expect(panel('Mean run duration by status').targets[0].expr).toMatch(/ml_run_duration_seconds_sum.*ml_run_duration_seconds_count/);
    expect(panel('Run traces (Jaeger)').targets[0]).toMatchObject({ queryType: 'search', service: '$experiment' });
    const ids = dashboard.panels.map((p: any) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('has a "System" row: the machine of each run, from the semantic-convention series runtel exports (test/system/prometheus.test.ts reads them)', () => {
    const rowAt = dashboard.panels.findIndex((p: any) => p.type === 'row' && p.title === 'System');
    expect(rowAt).toBeGreaterThan(0);
    const system = dashboard.panels.slice(rowAt + 1);
    expect(system.map((p: any) => p.title)).toEqual(['CPU', 'Memory', 'Disk', 'Network', 'Event-loop delay', 'GPU utilization', 'GPU memory', 'GPU power']);
    const exprs: string[] = system.flatMap((p: any) => p.targets.map((t: any) => t.expr));
    const names = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:system|process|v8js|nodejs|hw)_[a-z0-9_]+)\{/g)].map((m) => m[1]!)));
    expect([...names].sort()).toEqual(
      [
        'hw_gpu_memory_usage_bytes',
        'hw_gpu_utilization_ratio',
        'hw_power_watts',
        'nodejs_eventloop_delay_max_seconds',
        'nodejs_eventloop_delay_p99_seconds',
        'process_cpu_utilization_ratio',
        'process_memory_usage_bytes',
        'system_cpu_utilization_ratio',
        'system_filesystem_utilization_ratio',
        'system_memory_usage_bytes',
        'system_network_io_bytes_total',
        'v8js_memory_heap_used_bytes',
      ].sort(),
    );
    // Every series is selected by the dashboard's experiment and runs.
    for (const e of exprs) expect(e).toContain('ml_experiment_name="$experiment", ml_run_name=~"$run"');
  });

  it('every PromQL expression parses (`promtool check rules`, Grafana variables substituted)', async () => {
    const exprs = [...promExprs(), ...dashboard.templating.list.map((v: any) => String(v.query.query).replace(/^label_values\((.*), *[a-z_]+\)$/, '$1'))];
    const substitute = (e: string) => e.replace(/\$__rate_interval/g, '1m').replace(/\$[a-z]+/g, 'x');
    const rules = { groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `runtel:dashboard_expr_${i}`, expr: substitute(e) })) }] };
    const file = join(tmp, 'dashboard-rules.yml');
    writeFileSync(file, stringify(rules));
    const result = await runCommand(requireBinary('promtool'), ['check', 'rules', file], { timeoutMs: 30_000 });
    expect(result.stdout + result.stderr).toMatch(new RegExp(`SUCCESS: ${exprs.length} rules found`));
    expect(result.code).toBe(0);
  });

  it('the dashboard provider reads the folder docker-compose mounts the dashboards into', () => {
    const providers = parse(readFileSync(DASHBOARD_PROVIDERS, 'utf8')).providers;
    expect(providers).toHaveLength(1);
    const grafana = resolved.services.grafana;
    const mounts = (grafana.volumes as any[]).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`));
    expect(mounts).toContain(`${join(REPO_ROOT, 'deploy/grafana/dashboards')}:${providers[0].options.path}:ro`);
    expect(mounts).toContain(`${join(REPO_ROOT, 'deploy/grafana/provisioning')}:/etc/grafana/provisioning:ro`);
    expect(grafana.environment.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH).toBe(`${providers[0].options.path}/ml-runs.json`);
  });
});
/* eslint-enable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return */
