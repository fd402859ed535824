// The shared OTel → run-event translator on records in the orders and shapes pipelines deliver.
import { describe, expect, it } from 'vitest';
import { OtelRunTranslator } from '../../src/index.js';
import type { OtelLogInput } from '../../src/otel/translate/inputs.js';

const id = 'a'.repeat(32);
const rec = (eventName: string | undefined, attributes: Record<string, unknown>, timeMillis = 1000): OtelLogInput => ({ eventName, attributes: { 'ml.run.id': id, ...attributes }, timeMillis });
const start = rec('ml.run.start', { 'ml.run.name': 'r', 'ml.experiment.name': 'e', 'ml.param.lr': '0.1', 'ml.tag.team': 'ml' });

describe('OtelRunTranslator', () => {
  it('turns records into the run events, merging points of one step', () => {
    const t = new OtelRunTranslator();
    const events = t.logs([
      start,
      rec('ml.metric', { 'ml.metric.key': 'loss', 'ml.metric.value': 0.5, 'ml.metric.step': 3 }, 1001),
      rec('ml.metric', { 'ml.metric.key': 'acc', 'ml.metric.value': 'NaN', 'ml.metric.step': '3' }, 1001),
      rec('ml.run.end', { 'ml.run.status': 'failed', 'exception.type': 'Error', 'exception.message': 'boom' }, 2000),
    ]);
    expect(events).toEqual([
      { type: 'run_started', runId: id, name: 'r', experiment: 'e', startTime: 1000, params: { lr: '0.1' }, tags: { team: 'ml' } },
      { type: 'metrics', runId: id, step: 3, timestamp: 1001, values: { loss: 0.5, acc: NaN } },
      { type: 'run_finished', runId: id, endTime: 2000, status: 'failed', error: { type: 'Error', message: 'boom' } },
    ]);
  });

  it('complete(): every ml.metric and ml.system record the end counts has arrived, resent ones counted once', () => {
    const t = new OtelRunTranslator();
    const metric = (step: number) => rec('ml.metric', { 'ml.metric.key': 'loss', 'ml.metric.value': step, 'ml.metric.step': step }, 1001 + step);
    const system = rec('ml.system', { 'ml.system.step': 0, 'ml.system.cpu_utilization_percentage': 5 }, 1500);
    const end = rec('ml.run.end', { 'ml.run.status': 'success', 'ml.run.metric_records_count': 3 }, 2000);
    t.logs([start, metric(0), end]);
    expect(t.complete(id)).toBe(false);
    t.logs([start, metric(0), end]); // a resend
    expect(t.complete(id)).toBe(false);
    t.logs([system]);
    expect(t.complete(id)).toBe(false);
    t.logs([metric(1)]);
    expect(t.complete(id)).toBe(true);
    // No count (older emitters, a supervisor's crashed end): never complete, the bridge waits out its window.
    const other = 'b'.repeat(32);
    t.logs([{ eventName: 'ml.run.end', attributes: { 'ml.run.id': other, 'ml.run.status': 'crashed' }, timeMillis: 5 }]);
    expect(t.complete(other)).toBe(false);
    expect(t.complete('c'.repeat(32))).toBe(false);
  });

  it('complete(): the count also comes from the run span, and a resumed run counts its new process only', () => {
    const t = new OtelRunTranslator();
    const metric = (step: number) => rec('ml.metric', { 'ml.metric.key': 'loss', 'ml.metric.value': step, 'ml.metric.step': step }, 1001 + step);
    t.spans([{ name: 'r', attributes: { 'ml.run.id': id, 'ml.run.status': 'success', 'ml.run.metric_records_count': 1 }, startMillis: 1000, endMillis: 2000, status: { code: 1 }, events: [] }]);
    expect(t.complete(id)).toBe(false);
    t.logs([metric(0)]);
    expect(t.complete(id)).toBe(true);
    // Resumed elsewhere: its records so far do not count for the new end.
    t.logs([rec('ml.run.start', { 'ml.run.name': 'r', 'ml.run.resumed': true }, 3000), metric(5), rec('ml.run.end', { 'ml.run.status': 'success', 'ml.run.metric_records_count': 2 }, 4000)]);
    expect(t.complete(id)).toBe(false);
    t.logs([metric(6)]);
    expect(t.complete(id)).toBe(true);
  });

  it('complete(): points past what de-duplication remembers still count; a run that may be resent then stops counting', () => {
    const t = new OtelRunTranslator({ maxSeenPointsPerRun: 2, maxSeenPoints: 3 });
    const metric = (run: string, step: number): OtelLogInput => ({ eventName: 'ml.metric', attributes: { 'ml.run.id': run, 'ml.metric.key': 'loss', 'ml.metric.value': step, 'ml.metric.step': step }, timeMillis: 1001 + step });
    const other = 'b'.repeat(32);
    // 3 points, 2 remembered: the end's count is still reached without waiting out the bridge's window.
    t.logs([metric(id, 0), metric(id, 1), metric(id, 2), rec('ml.run.end', { 'ml.run.status': 'success', 'ml.run.metric_records_count': 3 }, 2000)]);
    expect(t.seenPoints).toBe(2);
    expect(t.complete(id)).toBe(true);
    // A request of this run that may come again (its sender was not told it was taken): a resent point
    // past the memory would count twice, so whether all have arrived can no longer be told.
    t.mayBeResent(id);
    expect(t.complete(id)).toBe(false);
    // Past maxSeenPoints the least recently active run forgets its points; its count so far stays right.
    const third = 'c'.repeat(32);
    t.logs([metric(other, 0), metric(other, 1), rec('ml.run.end', { 'ml.run.id': other, 'ml.run.status': 'success', 'ml.run.metric_records_count': 2 }, 2000)]);
    t.logs([metric(third, 0), metric(third, 1)]);
    expect(t.complete(other)).toBe(true);
    // A run whose points are all remembered is told apart when resent: it keeps counting.
    t.mayBeResent(third);
    t.logs([metric(third, 0), metric(third, 1), rec('ml.run.end', { 'ml.run.id': third, 'ml.run.status': 'success', 'ml.run.metric_records_count': 2 }, 2000)]);
    expect(t.complete(third)).toBe(true);
    t.mayBeResent(other); // forgotten: a resend could no longer be told apart
    expect(t.complete(other)).toBe(false);
    // Told before its points are forgotten: the same once they are.
    const fourth = 'd'.repeat(32);
    t.logs([metric(fourth, 0), rec('ml.run.end', { 'ml.run.id': fourth, 'ml.run.status': 'success', 'ml.run.metric_records_count': 1 }, 2000)]);
    t.mayBeResent(fourth);
    expect(t.complete(fourth)).toBe(true);
    t.logs([metric(third, 0)]); // a duplicate: third is now more recently active than fourth
    t.logs([metric('e'.repeat(32), 0)]); // past maxSeenPoints: fourth, the least recently active with points, forgets
    expect(t.complete(fourth)).toBe(false);
  });

  it('a point is its key, step and time: the same step at another time is another point, a system sample never collides with one', () => {
    const t = new OtelRunTranslator();
    const point = (step: number, time: number) => rec('ml.metric', { 'ml.metric.key': 'loss', 'ml.metric.value': time, 'ml.metric.step': step }, time);
    expect(t.logs([start, point(1, 10), point(1, 11), point(1, 12), point(2, 10)]).filter((e) => e.type === 'metrics')).toHaveLength(4);
    expect(t.logs([point(1, 12), point(1, 10), point(2, 10), point(1, 11)])).toEqual([]);
    expect(t.logs([rec('ml.system', { 'ml.system.step': 1, 'ml.system.cpu_utilization_percentage': 5 }, 10)])).toHaveLength(1);
    expect(t.seenPoints).toBe(5);
  });

  it('a resent batch adds nothing', () => {
    const t = new OtelRunTranslator();
    const batch = [start, rec('ml.metric', { 'ml.metric.key': 'loss', 'ml.metric.value': 1, 'ml.metric.step': 0 }, 1001)];
    expect(t.logs(batch)).toHaveLength(2);
    expect(t.logs(batch)).toEqual([]);
  });

  it('records before their ml.run.start: the run starts without their params, which follow once each', () => {
    const t = new OtelRunTranslator();
    const events = t.logs([
      rec('ml.params', { 'ml.param.batch': '32' }, 1001),
      rec('ml.metric', { 'ml.metric.key': 'loss', 'ml.metric.value': 1, 'ml.metric.step': 0 }, 1002),
      start,
    ]);
    expect(events.map((e) => e.type)).toEqual(['run_started', 'params', 'metrics', 'params', 'tags']);
    expect(events[0]).toMatchObject({ params: {}, tags: {} });
    expect(events[1]).toMatchObject({ params: { batch: '32' } });
    expect(events[3]).toMatchObject({ params: { lr: '0.1' } });
    expect(events[4]).toMatchObject({ tags: { team: 'ml' } });
    expect(t.logs([start])).toEqual([]);
  });

  it('takes the event name from an event.name attribute (older SDKs) and ignores records that are not runtel\'s', () => {
    const t = new OtelRunTranslator();
    const events = t.logs([
      { eventName: undefined, attributes: { 'event.name': 'ml.run.start', 'ml.run.id': id, 'ml.run.name': 'old' }, timeMillis: 5 },
      { eventName: 'http.request', attributes: { 'ml.run.id': id }, timeMillis: 6 },
      { eventName: undefined, attributes: { foo: 1 }, timeMillis: 7 },
    ]);
    expect(events).toEqual([{ type: 'run_started', runId: id, name: 'old', experiment: 'default', startTime: 5, params: {}, tags: {} }]);
    expect(t.stats().ignored).toBe(2);
  });

  it('a bad record is counted, not thrown', () => {
    const t = new OtelRunTranslator();
    expect(t.logs([start, rec('ml.metric', { 'ml.metric.key': 'loss', 'ml.metric.value': 'high', 'ml.metric.step': 0 })])).toHaveLength(1);
    expect(t.stats().rejected).toBe(1);
  });

  it('bounds the points remembered for de-duplication in all: the least recently active run forgets first', () => {
    const t = new OtelRunTranslator({ maxSeenPoints: 10 });
    const runRec = (runId: string, eventName: string, attributes: Record<string, unknown>, timeMillis = 1000): OtelLogInput => ({ eventName, attributes: { 'ml.run.id': runId, ...attributes }, timeMillis });
    const points = (runId: string, from: number, to: number): OtelLogInput[] =>
      Array.from({ length: to - from }, (_, i) => runRec(runId, 'ml.metric', { 'ml.metric.key': 'loss', 'ml.metric.value': 1, 'ml.metric.step': from + i }, 2000 + from + i));
    const [a, b, c] = ['a', 'b', 'c'].map((x) => x.repeat(32)) as [string, string, string];
    t.logs([runRec(a, 'ml.run.start', {}), runRec(b, 'ml.run.start', {}), runRec(c, 'ml.run.start', {})]);
    t.logs(points(a, 0, 4));
    t.logs(points(b, 0, 4));
    t.logs(points(a, 4, 5)); // a is now the more recently active of the two
    expect(t.seenPoints).toBe(9);
    t.logs(points(c, 0, 3)); // 12 > 10: b (least recently active) forgets its 4 points
    expect(t.seenPoints).toBe(8);
    // a's points are still known (a resend adds nothing); b's are not (a resend is forwarded again).
    expect(t.logs(points(a, 0, 5))).toEqual([]);
    expect(t.logs(points(b, 0, 4)).filter((e) => e.type === 'metrics')).toHaveLength(4);
    expect(t.seenPoints).toBeLessThanOrEqual(10);
  });
});
