// Validates the test server with the real `wandb` package (the venv from `bash scripts/provision.sh`):
// a short real script logs a run against the server, and the server must hold all of it. Then the
// same run is logged with runtel, and runtel's requests must have the shapes the real client sent.
// No network: the script only knows the test server's loopback URL, telemetry and error reporting
// are off, and any other HTTP(S) request goes to a closed loopback port through the proxy variables.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wandbRunId } from '../../src/wandb/history.js';
import { WandbClient } from '../../src/wandb/WandbClient.js';
import { wandbPython } from '../services/index.js';
import { RUN_CRITICAL_OPERATIONS, WandbTestServer, parseExtendedJson } from './server.js';
import type { RecordedRequest, StoredWandbRun } from './server.js';
import { API_KEY_40, realSdkEnv, testLogger } from './helpers.js';

const SCRIPT = `
import json, math, sys
import wandb

spec = json.loads(sys.argv[1])
run = wandb.init(
    project=spec["project"], id=spec["id"], name=spec["name"], config=spec["config"],
    tags=spec["tags"], group=spec["group"], job_type=spec["job_type"],
)
for step, values in enumerate(spec["rows"]):
    run.log({k: (float(v) if isinstance(v, str) else v) for k, v in values.items()}, step=step)
run.summary["best"] = 0.125
run.finish(exit_code=spec["exit_code"])
`;

interface RunSpec {
  project: string;
  id: string;
  name: string;
  config: Record<string, unknown>;
  tags: string[];
  group: string;
  job_type: string;
  /** Values per step; "nan", "inf", "-inf" are sent as floats. */
  rows: Record<string, number | string>[];
  exit_code: number;
}

const ROWS: Record<string, number | string>[] = [
  { loss: 1, acc: 0 },
  { loss: 0.5, acc: 0.25 },
  { loss: 0.25, acc: 0.5 },
  { loss: 'nan', acc: 'inf', gap: '-inf' },
  { loss: 0.125, acc: 0.75 },
];
const CONFIG = { lr: 0.001, epochs: 3, model: { layers: 2, act: 'relu' }, flag: true, label: 'baseline' };

let server: WandbTestServer;
let dir: string;
let realRun: StoredWandbRun;
let realFailed: StoredWandbRun;
let realRequests: RecordedRequest[];
let runtelRun: StoredWandbRun;
let runtelRequests: RecordedRequest[];

// W&B's public API reads a run's history back page by page (scan_history, HistoryPage).
const SCAN_SCRIPT = `
import json, math, sys
import wandb

def plain(v):
    return str(v) if isinstance(v, float) and not math.isfinite(v) else v

api = wandb.Api(timeout=30)
run = api.run(sys.argv[1])
print(json.dumps([{k: plain(v) for k, v in row.items() if not k.startswith("_") or k == "_step"} for row in run.scan_history(page_size=2)]))
`;

function runScript(spec: RunSpec | string, source = SCRIPT): Promise<{ code: number | null; output: string; ms: number }> {
  const python = wandbPython();
  const home = mkdtempSync(join(dir, 'home-'));
  const script = join(dir, source === SCRIPT ? 'real_run.py' : 'real_scan.py');
  writeFileSync(script, source);
  const env = realSdkEnv(server.url, home, { WANDB_X_DISABLE_STATS: 'true', WANDB_X_DISABLE_MACHINE_INFO: 'true', PYTHONUNBUFFERED: '1' });
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(python, [script, typeof spec === 'string' ? spec : JSON.stringify(spec)], { env, cwd: home, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output, ms: Date.now() - started });
    });
  });
}

function spec(id: string, exitCode: number): RunSpec {
  return { project: 'real-sdk', id, name: `real-${id}`, config: CONFIG, tags: ['a', 'b'], group: 'grp', job_type: 'train', rows: ROWS, exit_code: exitCode };
}

const toNumber = (v: number | string): number => (typeof v === 'number' ? v : v === 'nan' ? NaN : v === 'inf' ? Infinity : -Infinity);

function requestsOf(name: string): RecordedRequest[] {
  return server.requests.filter((r) => r.path.includes(`/${name}/`) || r.variables?.name === name || r.variables?.run === name);
}

/** `$name: Type` declarations of a GraphQL operation. */
function declarations(query: string): Map<string, string> {
  return new Map([...query.matchAll(/\$(\w+)\s*:\s*([\w!\[\]]+)/g)].map((m) => [m[1]!, m[2]!]));
}

/** `field: $variable` pairs of an `input: {...}` object. */
function inputFields(query: string): Map<string, string> {
  const input = /input:\s*\{([^}]*)\}/.exec(query)?.[1] ?? '';
  return new Map([...input.matchAll(/(\w+)\s*:\s*\$(\w+)/g)].map((m) => [m[1]!, m[2]!]));
}

/** A history row without the time keys (and runtel's step key). */
function stripRow(row: Record<string, unknown>): Record<string, unknown> {
  const { _runtime, _timestamp, 'runtel/step': _runtelStep, ...rest } = row;
  void _runtime;
  void _timestamp;
  void _runtelStep;
  return rest;
}

beforeAll(async () => {
  server = await WandbTestServer.start({ apiKey: API_KEY_40 });
  dir = mkdtempSync(join(tmpdir(), 'runtel-wandb-real-'));
  const ok = await runScript(spec('realok01', 0));
  expect(ok.code, ok.output).toBe(0);
  const failed = await runScript(spec('realfail1', 1));
  expect(failed.code, failed.output).toBe(0);
  realRun = server.getRun('real-sdk', 'realok01')!;
  realFailed = server.getRun('real-sdk', 'realfail1')!;
  realRequests = requestsOf('realok01');

  // The same run through runtel.
  const { logger, failures } = testLogger(server, { project: 'runtel-sdk', group: 'grp', jobType: 'train' });
  const run = logger.startRun({ name: 'real-realok01', config: CONFIG, tags: { a: '', b: '' } });
  ROWS.forEach((values, step) => run.logMetrics(Object.fromEntries(Object.entries(values).map(([k, v]) => [k, toNumber(v)])), { step }));
  await run.finish();
  await logger.shutdown();
  expect(failures).toEqual([]);
  runtelRun = server.getRun('runtel-sdk', wandbRunId(run.id))!;
  runtelRequests = requestsOf(runtelRun.name);
}, 240_000);

afterAll(async () => {
  await server?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('the test server, validated with the real wandb client', () => {
  it('answers every operation a normal init/log/finish needs, and nothing else is asked for', () => {
    expect(realRun).toBeDefined();
    const ops = new Set(server.graphql().filter((r) => r.userAgent !== 'runtel').map((r) => r.operation));
    expect(ops.has('UpsertBucket')).toBe(true);
    for (const request of server.graphql()) {
      if (RUN_CRITICAL_OPERATIONS.has(request.operation!)) expect(request.status, request.operation).toBe(200);
    }
    expect(server.unknownOperations.filter((op) => RUN_CRITICAL_OPERATIONS.has(op))).toEqual([]);
    expect(server.unknownPaths).toEqual([]);
    // Recorded for docs/wandb.md; an operation new to this server shows up here.
    expect([...ops].sort()).toEqual(expect.arrayContaining(['UpsertBucket', 'CreateRunFiles']));
    expect(server.unknownOperations).toEqual([]);
  });

  it('stores the real run: config, every history row, summary, tags, group, job type, exit code', () => {
    expect(realRun.displayName).toBe('real-realok01');
    expect(realRun.tags).toEqual(['a', 'b']);
    expect(realRun.group).toBe('grp');
    expect(realRun.jobType).toBe('train');
    const config = realRun.config as Record<string, { value: unknown }>;
    for (const [key, value] of Object.entries(CONFIG)) expect(config[key]).toEqual({ value });
    const rows = server.history(realRun);
    expect(rows).toHaveLength(ROWS.length);
    rows.forEach((row, step) => {
      expect(row._step).toBe(step);
      expect(typeof row._runtime).toBe('number');
      expect(typeof row._timestamp).toBe('number');
      for (const [key, value] of Object.entries(ROWS[step]!)) expect(row[key]).toEqual(toNumber(value));
    });
    expect(realRun.historyLines[3]).toMatch(/"loss":NaN/);
    expect(realRun.historyLines[3]).toMatch(/"acc":Infinity/);
    expect(realRun.historyLines[3]).toMatch(/"gap":-Infinity/);
    expect(realRun.summary).toMatchObject({ loss: 0.125, acc: 0.75, gap: -Infinity, best: 0.125, _step: 4 });
    expect(realRun).toMatchObject({ complete: true, exitcode: 0, state: 'finished' });
    expect(realFailed).toMatchObject({ complete: true, exitcode: 1, state: 'failed' });
    expect(server.history(realFailed)).toHaveLength(ROWS.length);
  });
  it("serves a run's history to the real public API's scan_history, page by page (HistoryPage)", async () => {
    const before = server.unknownOperations.length;
    const scan = await runScript(`${server.entity}/real-sdk/realok01`, SCAN_SCRIPT);
    expect(scan.code, scan.output).toBe(0);
    const rows = JSON.parse(scan.output.trim().split('\n').pop()!) as Array<Record<string, unknown>>;
    expect(rows.map((r) => r._step)).toEqual(ROWS.map((_, step) => step));
    expect(rows.map((r) => r.acc)).toEqual([0, 0.25, 0.5, 'inf', 0.75]);
    expect(server.requests.filter((r) => r.operation === 'HistoryPage').length).toBeGreaterThanOrEqual(3);
    expect(server.unknownOperations.slice(before)).toEqual([]);
    // runtel reads history (a restarted bridge learning what W&B has) with the query the real client sends.
    const real = server.requests.filter((r) => r.operation === 'HistoryPage').pop()!;
    const lines = await new WandbClient({ baseUrl: server.url, apiKey: API_KEY_40 }).historyPage(server.entity, 'real-sdk', 'realok01', 0, 100, 1000);
    expect(lines).toEqual(realRun.historyLines);
    const mine = server.requests.filter((r) => r.operation === 'HistoryPage').pop()!;
    expect(declarations(mine.query!)).toEqual(declarations(real.query!));
    expect(mine.query!.replace(/\s+/g, '')).toContain(real.query!.replace(/\s+/g, '').replace(/^queryHistoryPage\([^)]*\)/, ''));
  });
});

describe('runtel sends the shapes the real client sends', () => {
  it('UpsertBucket: the same variable declarations and input fields, wrapped config values', () => {
    const real = realRequests.filter((r) => r.operation === 'UpsertBucket');
    const ours = runtelRequests.filter((r) => r.operation === 'UpsertBucket');
    expect(real.length).toBeGreaterThan(0);
    expect(ours.length).toBeGreaterThan(0);
    const realDecl = declarations(real[0]!.query!);
    const realInput = inputFields(real[0]!.query!);
    for (const request of ours) {
      for (const [name, type] of declarations(request.query!)) expect(realDecl.get(name), `$${name}`).toBe(type);
      for (const [field, variable] of inputFields(request.query!)) expect(realInput.get(field), field).toBe(variable);
      for (const name of Object.keys(request.variables!)) expect(realDecl.has(name), `variable ${name}`).toBe(true);
      expect(typeof request.variables!.config).toBe('string');
    }
    const realConfig = JSON.parse(real[real.length - 1]!.variables!.config as string) as Record<string, unknown>;
    const ourConfig = JSON.parse(ours[ours.length - 1]!.variables!.config as string) as Record<string, unknown>;
    const user = (config: Record<string, unknown>) => Object.fromEntries(Object.entries(config).filter(([k]) => k !== '_wandb' && !k.startsWith('runtel_')));
    expect(user(ourConfig)).toEqual(user(realConfig));
    for (const value of Object.values(ourConfig)) expect(Object.keys(value as object)).toEqual(['value']);
    // The metric definitions have the real client's encoding (define_metric).
    expect((realConfig._wandb as { value: { m: unknown[] } }).value).toHaveProperty('m');
    expect(ours[0]!.variables).toMatchObject({ name: runtelRun.name, project: 'runtel-sdk', displayName: 'real-realok01', groupName: 'grp', jobType: 'train', tags: ['a', 'b'] });
    expect(real[0]!.variables).toMatchObject({ name: 'realok01', project: 'real-sdk', displayName: 'real-realok01', groupName: 'grp', jobType: 'train', tags: ['a', 'b'] });
  });

  it('file_stream: the same body shape, history rows, extended JSON, summary and completion', () => {
    const bodies = (requests: RecordedRequest[]) => requests.filter((r) => r.path.endsWith('/file_stream') && r.text !== '{}').map((r) => r.body as Record<string, unknown>);
    const real = bodies(realRequests);
    const ours = bodies(runtelRequests);
    const topKeys = new Set(['files', 'uploaded', 'complete', 'exitcode', 'preempting']);
    for (const body of [...real, ...ours]) {
      for (const key of Object.keys(body)) expect(topKeys.has(key), key).toBe(true);
      const files = body.files as Record<string, { offset: number; content: unknown[] }>;
      for (const [name, chunk] of Object.entries(files)) {
        expect(Object.keys(chunk).sort()).toEqual(['content', 'offset']);
        expect(Number.isInteger(chunk.offset)).toBe(true);
        for (const line of chunk.content) expect(typeof line).toBe('string');
        if (name === 'wandb-summary.json') {
          expect(chunk.offset).toBe(0);
          expect(chunk.content).toHaveLength(1);
        }
      }
    }
    for (const set of [real, ours]) {
      const last = set[set.length - 1]!;
      expect(last).toMatchObject({ complete: true, exitcode: 0 });
      expect(set.filter((b) => b.complete === true)).toHaveLength(1);
    }
    // Row by row, the same `_step`s, keys and values (runtel adds its step key).
    expect(server.history(runtelRun).map(stripRow)).toEqual(server.history(realRun).map(stripRow));
    expect(server.history(runtelRun).map((r) => r['runtel/step'])).toEqual([0, 1, 2, 3, 4]);
    // Non-finite values as the same bare tokens.
    for (const token of ['"loss":NaN', '"acc":Infinity', '"gap":-Infinity']) {
      expect(realRun.historyLines[3]).toContain(token);
      expect(runtelRun.historyLines[3]).toContain(token);
    }
    // The summary: the same reserved keys and the same last values.
    const realSummary = parseExtendedJson(realRun.summaryLine!) as Record<string, unknown>;
    const ourSummary = parseExtendedJson(runtelRun.summaryLine!) as Record<string, unknown>;
    for (const key of ['_step', '_runtime', '_timestamp', '_wandb']) {
      expect(ourSummary, key).toHaveProperty(key);
      expect(realSummary, key).toHaveProperty(key);
    }
    expect(Object.keys(ourSummary._wandb as object)).toEqual(Object.keys(realSummary._wandb as object));
    const { best: _best, ...realMetrics } = realSummary;
    void _best;
    for (const key of ['loss', 'acc', 'gap', '_step']) expect(ourSummary[key]).toEqual(realMetrics[key]);
  });

  it('authenticates the same way and exits failed runs the same way', async () => {
    for (const request of [...realRequests, ...runtelRequests].filter((r) => r.method === 'POST')) {
      expect(Buffer.from(request.authorization!.replace(/^Basic /, ''), 'base64').toString()).toBe(`api:${API_KEY_40}`);
      expect(request.contentType).toMatch(/^application\/json/);
    }
    const { logger } = testLogger(server, { project: 'runtel-sdk' });
    const run = logger.startRun({ name: 'failing' });
    run.logMetrics({ loss: 1 }, { step: 0 });
    await run.finish('failed', new Error('x'));
    await logger.shutdown();
    const ours = server.getRun('runtel-sdk', wandbRunId(run.id))!;
    expect({ complete: ours.complete, exitcode: ours.exitcode, state: ours.state }).toEqual({ complete: realFailed.complete, exitcode: realFailed.exitcode, state: realFailed.state });
  });
});
