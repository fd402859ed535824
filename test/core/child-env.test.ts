// The environment contract in one process: what run.childEnv() writes, and how startRun reads it
// (RUNTEL_PARENT_RUN_ID, RUNTEL_PARENT_RUN_NAME, RUNTEL_EXPERIMENT, TRACEPARENT/TRACESTATE, ranks),
// including the opt-out and bad values (a warning each, never a throw). The same across real
// processes and services: test/processes/.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { hostname } from 'node:os';
import { CompositeLogger } from '../../src/backends/CompositeLogger.js';
import { InMemoryLogger } from '../../src/backends/InMemoryLogger.js';
import { pipelines } from '../otel/helpers.js';
import { WandbTestServer } from '../wandb/server.js';
import { testLogger } from '../wandb/helpers.js';
import { wandbRunId } from '../../src/wandb/history.js';

const KEYS = ['RUNTEL_PARENT_RUN_ID', 'RUNTEL_PARENT_RUN_NAME', 'RUNTEL_EXPERIMENT', 'TRACEPARENT', 'TRACESTATE', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID', 'WANDB_RUN_GROUP'];
const saved = Object.fromEntries(KEYS.map((k) => [k, process.env[k]]));
let stderr: string[];

beforeEach(() => {
  for (const key of KEYS) delete process.env[key];
  stderr = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr.push(String(chunk));
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
  for (const key of KEYS) {
    if (saved[key] === undefined) delete process.env[key];
    else process.env[key] = saved[key];
  }
});

/** Puts a run's childEnv() into this process's environment, as a launched process would have it. */
function launchedBy(env: Record<string, string>, extra: Record<string, string> = {}): void {
  Object.assign(process.env, env, extra);
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';

describe('run.childEnv()', () => {
  it('names the run, its name and experiment; without a span TRACEPARENT/TRACESTATE are empty (clearing inherited ones)', async () => {
    const logger = new InMemoryLogger();
    const run = logger.startRun({ name: 'sweep', experiment: 'xp' });
    expect(run.childEnv()).toEqual({ RUNTEL_PARENT_RUN_ID: run.id, RUNTEL_PARENT_RUN_NAME: 'sweep', RUNTEL_EXPERIMENT: 'xp', TRACEPARENT: '', TRACESTATE: '' });
    await logger.shutdown();
  });

  it('a run started with no parent in a launched process is the launcher run\'s child, in its experiment, named after it', async () => {
    const logger = new InMemoryLogger();
    const parent = logger.startRun({ name: 'sweep', experiment: 'xp', activate: false });
    launchedBy(parent.childEnv());
    const child = logger.startRun({ activate: false });
    expect(child.parentId).toBe(parent.id);
    expect(child.experiment).toBe('xp');
    expect(child.name).toBe(`sweep-${child.id.slice(0, 8)}`);
    expect(logger.getRun(child.id)!.parentId).toBe(parent.id);
    // An experiment given wins; parent: null is top-level whatever the environment says.
    expect(logger.startRun({ experiment: 'other', activate: false }).experiment).toBe('other');
    const top = logger.startRun({ parent: null, activate: false });
    expect(top.parentId).toBeUndefined();
    expect(top.name).toBe(`run-${top.id.slice(0, 8)}`);
    // A parent in this process wins over the environment's.
    expect(logger.startRun({ parent: top, activate: false }).parentId).toBe(top.id);
    await logger.shutdown();
    expect(stderr.join('')).toBe('');
  });

  it('torchrun ranks (RANK, WORLD_SIZE, LOCAL_RANK) and SLURM ranks become tags and the default name', async () => {
    const logger = new InMemoryLogger();
    launchedBy({ RUNTEL_PARENT_RUN_ID: 'ab'.repeat(16), RUNTEL_PARENT_RUN_NAME: 'ddp' }, { RANK: '3', WORLD_SIZE: '4', LOCAL_RANK: '1' });
    const torch = logger.startRun({ tags: { team: 'a' } });
    expect(torch.name).toBe('ddp-rank3');
    expect(logger.getRun(torch.id)!.tags).toEqual({ 'runtel.rank': '3', 'runtel.world_size': '4', 'runtel.local_rank': '1', 'runtel.host': hostname(), team: 'a' });
    for (const key of ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'RUNTEL_PARENT_RUN_ID', 'RUNTEL_PARENT_RUN_NAME']) delete process.env[key];
    launchedBy({ SLURM_PROCID: '7', SLURM_NTASKS: '8' });
    const slurm = logger.startRun();
    expect(slurm.parentId).toBeUndefined();
    expect(slurm.name).toBe(`run-${slurm.id.slice(0, 8)}-rank7`);
    expect(logger.getRun(slurm.id)!.tags).toMatchObject({ 'runtel.rank': '7', 'runtel.world_size': '8' });
    // Nested runs inside the ranked process are not tagged again.
    const nested = logger.startRun({ nested: true });
    expect(logger.getRun(nested.id)!.tags).toEqual({});
    await logger.shutdown();
  });

  it('bad input warns once and never throws: a malformed id leaves the run top-level, a malformed TRACEPARENT nests by id only', async () => {
    const p = pipelines();
    launchedBy({ RUNTEL_PARENT_RUN_ID: 'not-a-run-id', RANK: 'zero' });
    const a = p.logger.startRun({ activate: false });
    const b = p.logger.startRun({ activate: false });
    expect([a.parentId, b.parentId]).toEqual([undefined, undefined]);
    launchedBy({ RUNTEL_PARENT_RUN_ID: 'cd'.repeat(16), TRACEPARENT: '00-nothex-00f067aa0ba902b7-01' });
    const c = p.logger.startRun({ activate: false });
    const d = p.logger.startRun({ activate: false });
    expect([c.parentId, d.parentId]).toEqual(['cd'.repeat(16), 'cd'.repeat(16)]);
    await Promise.all([a, b, c, d].map((r) => r.finish()));
    const text = stderr.join('');
    expect(text.match(/ignoring RUNTEL_PARENT_RUN_ID="not-a-run-id": a run id is 32 hex characters; the run is top-level/g)).toHaveLength(1);
    expect(text.match(/ignoring TRACEPARENT="00-nothex-00f067aa0ba902b7-01": not a W3C traceparent/g)).toHaveLength(1);
    expect(text.match(/ignoring RANK="zero"/g)).toHaveLength(1);
    // The run spans of the malformed TRACEPARENT start their own traces, still saying their parent.
    const span = p.spans().find((s) => s.attributes['ml.run.id'] === c.id)!;
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.attributes['ml.run.parent_id']).toBe('cd'.repeat(16));
    await p.shutdown();
  });
});

describe('OTel: the run span of a launched process continues TRACEPARENT', () => {
  it('child span of the TRACEPARENT span, same trace, TRACESTATE kept; its own childEnv names its span; user spans nest under it', async () => {
    const p = pipelines();
    launchedBy({ RUNTEL_PARENT_RUN_ID: 'ef'.repeat(16), TRACEPARENT: `00-${TRACE_ID}-${SPAN_ID}-01`, TRACESTATE: 'vendor=abc' });
    const logger = new CompositeLogger([new InMemoryLogger(), p.logger]);
    const run = logger.startRun({ name: 'trainer' });
    const env = run.childEnv();
    const tracer = p.tracerProvider.getTracer('user');
    tracer.startActiveSpan('load-data', (span) => span.end());
    await run.finish();
    const runSpan = p.spans().find((s) => s.name === 'trainer')!;
    expect(runSpan.spanContext().traceId).toBe(TRACE_ID);
    expect(runSpan.parentSpanContext).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, isRemote: true });
    expect(runSpan.spanContext().traceState?.get('vendor')).toBe('abc');
    expect(runSpan.attributes['ml.run.parent_id']).toBe('ef'.repeat(16));
    expect(env.TRACEPARENT).toBe(`00-${TRACE_ID}-${runSpan.spanContext().spanId}-01`);
    expect(env.TRACESTATE).toBe('vendor=abc');
    expect(env.RUNTEL_PARENT_RUN_ID).toBe(run.id);
    const user = p.spans().find((s) => s.name === 'load-data')!;
    expect(user.parentSpanContext?.spanId).toBe(runSpan.spanContext().spanId);
    // Its end flushes the providers as a top-level run's does: the parent is elsewhere.
    expect(p.records('ml.run.end')).toHaveLength(1);
    await logger.shutdown();
    await p.shutdown();
  });
});

describe('W&B: a launching run heads its group, and its children join it through WANDB_RUN_GROUP', () => {
  it('the parent gets its own id as group (job type parent) when childEnv() is taken; a child logger in the launched environment groups under it', async () => {
    const server = await WandbTestServer.start();
    try {
      const launcher = testLogger(server).logger;
      const parent = launcher.startRun({ name: 'sweep', experiment: 'xp', activate: false });
      await launcher.forceFlush();
      expect(server.getRun('xp', wandbRunId(parent.id))!.group).toBeUndefined();
      const env = parent.childEnv();
      expect(env.WANDB_RUN_GROUP).toBe(wandbRunId(parent.id));
      // The launched process: a logger of its own; WandbLogger reads WANDB_RUN_GROUP as W&B's SDK does.
      launchedBy(env);
      const trainer = testLogger(server).logger;
      const child = trainer.startRun({ activate: false });
      await child.finish();
      await parent.finish();
      await Promise.all([trainer.shutdown(), launcher.shutdown()]);
      expect(server.getRun('xp', wandbRunId(parent.id))).toMatchObject({ group: wandbRunId(parent.id), jobType: 'parent' });
      expect(server.getRun('xp', wandbRunId(child.id))).toMatchObject({ group: wandbRunId(parent.id), jobType: 'child', displayName: `sweep-${child.id.slice(0, 8)}` });
    } finally {
      await server.close();
    }
  });
});
