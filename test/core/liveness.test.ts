// Heartbeats and liveness without remote services: the JSONL store's heartbeat lines and recorded
// process, the OTel backend's ml.run.heartbeat records and `crashed` status, the translator's
// handling of crashes and revivals, process checks, and what bad intervals get.

import { mkdtempSync, readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SpanStatusCode } from '@opentelemetry/api';
import { JsonlLogger, MlflowLogger, OtelLogger, OtelRunTranslator, WandbLogger, createLoggerFromEnv, readRun } from '../../src/index.js';
import { processIdentity, processState } from '../../src/core/liveness.js';
import { liveness, withLiveness } from '../../src/backends/jsonl/liveness.js';
import { pipelines, sleep } from '../otel/helpers.js';

const saved = process.env.RUNTEL_HEARTBEAT_INTERVAL_MILLIS;
afterEach(() => {
  if (saved === undefined) delete process.env.RUNTEL_HEARTBEAT_INTERVAL_MILLIS;
  else process.env.RUNTEL_HEARTBEAT_INTERVAL_MILLIS = saved;
});

const lines = (dir: string, runId: string): Array<Record<string, unknown>> =>
  readFileSync(join(dir, runId, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('bad heartbeat intervals', () => {
  const makers: Array<[string, () => unknown]> = [
    ['JsonlLogger', () => new JsonlLogger({ dir: mkdtempSync(join(tmpdir(), 'runtel-hb-')) })],
    ['MlflowLogger', () => new MlflowLogger({ trackingUri: 'http://127.0.0.1:9' })],
    ['WandbLogger', () => new WandbLogger({ apiKey: 'x'.repeat(40), mode: 'online' })],
    ['OtelLogger', () => new OtelLogger()],
    ['createLoggerFromEnv', () => createLoggerFromEnv()],
  ];
  for (const raw of ['0', '-5', 'soon', 'NaN']) {
    it(`RUNTEL_HEARTBEAT_INTERVAL_MILLIS=${raw}: every logger refuses to start, naming the variable`, () => {
      process.env.RUNTEL_HEARTBEAT_INTERVAL_MILLIS = raw;
      for (const [name, make] of makers) {
        expect(make, name).toThrow(`RUNTEL_HEARTBEAT_INTERVAL_MILLIS must be a number of milliseconds greater than 0, got ${JSON.stringify(raw)}`);
      }
    });
  }

  it('the option heartbeatIntervalMillis ≤ 0 or not a number is a RangeError naming the option', () => {
    for (const bad of [0, -1, Number.NaN, '30' as unknown as number]) {
      expect(() => new JsonlLogger({ dir: tmpdir(), heartbeatIntervalMillis: bad })).toThrow(RangeError);
      expect(() => new MlflowLogger({ trackingUri: 'http://127.0.0.1:9', heartbeatIntervalMillis: bad })).toThrow(/^heartbeatIntervalMillis must be a number of milliseconds greater than 0/);
      expect(() => new OtelLogger({ heartbeatIntervalMillis: bad })).toThrow(/^heartbeatIntervalMillis must be a number of milliseconds greater than 0/);
    }
  });
});

describe('JSONL store', () => {
  it("a run's start records its process; a quiet run gets heartbeat lines, a busy one none, a finished one no more", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-hb-'));
    const logger = new JsonlLogger({ dir, heartbeatIntervalMillis: 100 });
    const run = logger.startRun({ name: 'quiet' });
    run.logMetrics({ loss: 1 });
    await sleep(500);
    const quiet = lines(dir, run.id).filter((l) => l.type === 'heartbeat');
    expect(quiet.length).toBeGreaterThanOrEqual(2);
    expect(quiet.length).toBeLessThanOrEqual(5);
    for (let i = 1; i < quiet.length; i++) expect((quiet[i]!.time as number) - (quiet[i - 1]!.time as number)).toBeGreaterThanOrEqual(100);
    const start = lines(dir, run.id)[0]!;
    expect(start).toMatchObject({ type: 'run_started', v: 3, process: { pid: process.pid, host: hostname(), startTime: expect.any(Number) } });
    if (process.platform === 'linux') expect(start.process).toMatchObject({ startTicks: expect.any(Number), bootId: expect.any(String) });

    // Busy: lines are written anyway, so no heartbeat comes between them.
    const busyFrom = Date.now();
    for (let i = 0; i < 20; i++) {
      run.logMetrics({ loss: i });
      await sleep(25);
    }
    expect(lines(dir, run.id).filter((l) => l.type === 'heartbeat' && (l.time as number) > busyFrom + 50)).toEqual([]);
    await run.finish();
    const count = lines(dir, run.id).length;
    await sleep(400);
    expect(lines(dir, run.id)).toHaveLength(count);
    await logger.shutdown();

    // Readers skip heartbeat lines (they are not events) but note the latest.
    const stored = readRun(join(dir, run.id))!;
    expect(stored.events.map((e) => e.type)).not.toContain('heartbeat');
    expect(stored.lastHeartbeat).toBeGreaterThanOrEqual(quiet.at(-1)!.time as number);
    expect(stored.process).toEqual(processIdentity());
    expect(stored.record.metrics.loss).toHaveLength(21);
  });

  it('a running run of a live process is running here, and on another host while it heartbeats; a finished run is left as it is', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtel-hb-'));
    const logger = new JsonlLogger({ dir, heartbeatIntervalMillis: 100 });
    const run = logger.startRun({ name: 'alive' });
    await sleep(450);
    const stored = readRun(join(dir, run.id))!;
    expect(liveness(stored, { staleAfterMillis: 300 })).toMatchObject({ state: 'running' });
    expect(liveness(stored, { staleAfterMillis: 300, host: 'elsewhere' })).toMatchObject({ state: 'running' });
    // Seen later from elsewhere, once heartbeats stopped coming: crashed, at its last sign of life.
    const later = liveness(stored, { staleAfterMillis: 300, host: 'elsewhere', now: Date.now() + 1000 })!;
    expect(later).toMatchObject({ state: 'crashed', reason: expect.stringMatching(/^nothing written for 1 s, not even a heartbeat \(process \d+ on .*, which this host cannot check\)$/) });
    expect(withLiveness(stored, { staleAfterMillis: 300, host: 'elsewhere', now: Date.now() + 1000 }).record).toMatchObject({ status: 'crashed', endTime: Math.floor(later.lastSign), error: { type: 'Crashed' } });
    await run.finish('failed');
    await logger.shutdown();
    const done = readRun(join(dir, run.id))!;
    expect(liveness(done, { staleAfterMillis: 300, now: Date.now() + 60_000 })).toBeUndefined();
    expect(withLiveness(done, { staleAfterMillis: 300, now: Date.now() + 60_000 }).record.status).toBe('failed');
  });
});

describe('process checks', () => {
  it('this process is alive; the same pid with another start time (a reused pid) or after a reboot is gone; another host cannot be checked', () => {
    const self = processIdentity();
    expect(processState(self)).toBe('alive');
    expect(processState({ ...self, host: 'elsewhere' })).toBe('unknown');
    if (process.platform === 'linux') {
      expect(processState({ ...self, startTicks: self.startTicks! - 1 })).toBe('gone');
      expect(processState({ ...self, bootId: '00000000-0000-0000-0000-000000000000' })).toBe('gone');
    }
    // A pid that does not exist (beyond Linux's pid_max).
    expect(processState({ pid: 2 ** 22 + 17, host: hostname(), startTime: 0 })).toBe('gone');
  });
});

describe('OTel backend', () => {
  it('a quiet run emits ml.run.heartbeat records in its span context; a busy or finished one does not', async () => {
    const otel = pipelines({ logger: { heartbeatIntervalMillis: 100 }, processorOptions: { scheduledDelayMillis: 10 } });
    const run = otel.logger.startRun({ name: 'quiet' });
    await sleep(500);
    await otel.logger.forceFlush();
    const beats = otel.records('ml.run.heartbeat');
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(beats.length).toBeLessThanOrEqual(5);
    expect(beats[0]!.attributes).toEqual({ 'ml.run.id': run.id });
    const busyFrom = Date.now();
    for (let i = 0; i < 20; i++) {
      run.logMetrics({ loss: i });
      await sleep(25);
    }
    await otel.logger.forceFlush();
    const duringBusy = otel.records('ml.run.heartbeat').filter((r) => r.hrTime[0] * 1000 + r.hrTime[1] / 1e6 > busyFrom + 50);
    expect(duringBusy).toEqual([]);
    await run.finish();
    const count = otel.records('ml.run.heartbeat').length;
    await sleep(400);
    await otel.logger.forceFlush();
    expect(otel.records('ml.run.heartbeat')).toHaveLength(count);
    const span = otel.spans()[0]!;
    expect(beats[0]!.spanContext?.spanId).toBe(span.spanContext().spanId);
    await otel.shutdown();
  });

  it("crashed: the span is ERROR 'crashed' and ml.run.end says crashed; for a run it never saw (a supervisor's view), only the ml.run.end record", async () => {
    const otel = pipelines();
    const run = otel.logger.startRun({ name: 'watched' });
    await run.finish('crashed', new Error('process 1234 gone'));
    otel.logger.backend.onEvent({ type: 'run_finished', runId: 'f'.repeat(32), endTime: Date.now(), status: 'crashed', error: { type: 'Crashed', message: 'process 99 gone' } });
    await otel.logger.forceFlush();
    const span = otel.spans()[0]!;
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'crashed' });
    expect(span.attributes['ml.run.status']).toBe('crashed');
    const ends = otel.records('ml.run.end').map((r) => r.attributes);
    expect(ends).toEqual([
      expect.objectContaining({ 'ml.run.id': run.id, 'ml.run.status': 'crashed', 'exception.message': 'process 1234 gone' }),
      { 'ml.run.id': 'f'.repeat(32), 'ml.run.status': 'crashed', 'exception.type': 'Crashed', 'exception.message': 'process 99 gone' },
    ]);
    // The translator reads them back as crashed runs.
    const events = new OtelRunTranslator().logs(otel.records().map((r) => ({ eventName: r.eventName, attributes: r.attributes, timeMillis: 0 })));
    expect(events.filter((e) => e.type === 'run_finished').map((e) => e.type === 'run_finished' && e.status)).toEqual(['crashed', 'crashed']);
    await otel.shutdown();
  });
});

describe('translator', () => {
  const id = 'c'.repeat(32);
  const rec = (eventName: string, attributes: Record<string, unknown> = {}, timeMillis = 1000) => ({ eventName, attributes: { 'ml.run.id': id, ...attributes }, timeMillis });

  it('crashed() finishes an open run once; a finished run not at all; heartbeats make no events', () => {
    const t = new OtelRunTranslator();
    t.logs([rec('ml.run.start', { 'ml.run.name': 'n', 'ml.experiment.name': 'e' }), rec('ml.run.heartbeat')]);
    expect(t.crashed(id, 5000)).toEqual([{ type: 'run_finished', runId: id, endTime: 5000, status: 'crashed' }]);
    expect(t.crashed(id, 6000)).toEqual([]);
    expect(t.isOpen(id)).toBe(false);
    const other = new OtelRunTranslator();
    other.logs([rec('ml.run.start'), rec('ml.run.end', { 'ml.run.status': 'success' })]);
    expect(other.crashed(id, 5000)).toEqual([]);
    expect(new OtelRunTranslator().logs([rec('ml.run.heartbeat')])).toEqual([]);
  });

  it('a crashed run that speaks again starts again (resumed, same identity) before its data; its own end replaces crashed', () => {
    const t = new OtelRunTranslator();
    t.logs([rec('ml.run.start', { 'ml.run.name': 'n', 'ml.experiment.name': 'e', 'ml.run.parent_id': 'p'.repeat(32) })]);
    t.crashed(id, 2000);
    const again = t.logs([rec('ml.metric', { 'ml.metric.key': 'loss', 'ml.metric.value': 1, 'ml.metric.step': 3 }, 3000), rec('ml.run.end', { 'ml.run.status': 'success' }, 4000)]);
    expect(again).toEqual([
      { type: 'run_started', runId: id, name: 'n', experiment: 'e', parentId: 'p'.repeat(32), startTime: 3000, params: {}, tags: {}, resumed: true },
      { type: 'metrics', runId: id, step: 3, timestamp: 3000, values: { loss: 1 } },
      { type: 'run_finished', runId: id, endTime: 4000, status: 'success' },
    ]);
    // A heartbeat is enough to take it back; the span's end too.
    const u = new OtelRunTranslator();
    u.logs([rec('ml.run.start', { 'ml.run.name': 'n' })]);
    u.crashed(id, 2000);
    expect(u.logs([rec('ml.run.heartbeat', {}, 2500)]).map((e) => e.type)).toEqual(['run_started']);
    u.crashed(id, 3000);
    const span = { name: 'n', startMillis: 1000, endMillis: 4000, attributes: { 'ml.run.id': id, 'ml.run.status': 'killed' }, status: { code: 2 }, events: [] };
    expect(u.spans([span]).map((e) => (e.type === 'run_finished' ? e.status : e.type))).toEqual(['run_started', 'killed']);
  });
});
