// Which run is current, and which experiment a nested run lands in (issue 14, items 3 and 4).
//
// The rule (README "Quick start"): a run is current from `startRun()` on for the code that follows in
// the same async context — the rest of the function and what it awaits or calls — until it finishes;
// `withRun(logger, options, fn)` makes it current inside `fn` only. "Current" means `activeRun()`,
// the parent `startRun({ nested: true })` finds, and the OpenTelemetry context auto-instrumented
// spans (HTTP here, with the real @opentelemetry/instrumentation-http) are created in.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type * as Http from 'node:http';
import { SpanKind, trace } from '@opentelemetry/api';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { InMemoryLogRecordExporter, LoggerProvider } from '@opentelemetry/sdk-logs';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { CompositeLogger, CountingBatchLogRecordProcessor, InMemoryLogger, OtelLogger, activeRun, withRun } from '../../src/index.js';
import type { Run } from '../../src/index.js';
import { installContextManager } from '../otel/helpers.js';

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 1));

describe("a nested run's default experiment is its parent's", () => {
  it('with nested: true inside withRun', async () => {
    const logger = new InMemoryLogger();
    await withRun(logger, { name: 'search', experiment: 'iris' }, async () => {
      await withRun(logger, { name: 'trial', nested: true }, () => undefined);
    });
    expect(logger.getRun('trial')!.experiment).toBe('iris');
  });

  it('with an explicit parent, two levels down', async () => {
    const logger = new InMemoryLogger();
    const search = logger.startRun({ name: 'search', experiment: 'iris', activate: false });
    const trial = logger.startRun({ name: 'trial', parent: search, activate: false });
    const fold = logger.startRun({ name: 'fold', parent: trial, activate: false });
    expect([trial.experiment, fold.experiment]).toEqual(['iris', 'iris']);
    await Promise.all([fold.finish(), trial.finish(), search.finish()]);
    expect(logger.getRun('fold')!.experiment).toBe('iris');
  });

  it('wins over RUNTEL_EXPERIMENT; an explicit experiment wins over the parent', async () => {
    const logger = new InMemoryLogger();
    const saved = process.env.RUNTEL_EXPERIMENT;
    process.env.RUNTEL_EXPERIMENT = 'from-env';
    try {
      await withRun(logger, { name: 'search', experiment: 'iris' }, async () => {
        await withRun(logger, { name: 'inherits', nested: true }, () => undefined);
        await withRun(logger, { name: 'own', nested: true, experiment: 'elsewhere' }, () => undefined);
      });
      await withRun(logger, { name: 'top' }, () => undefined);
    } finally {
      if (saved === undefined) delete process.env.RUNTEL_EXPERIMENT;
      else process.env.RUNTEL_EXPERIMENT = saved;
    }
    expect(logger.getRun('inherits')!.experiment).toBe('iris');
    expect(logger.getRun('own')!.experiment).toBe('elsewhere');
    expect(logger.getRun('top')!.experiment).toBe('from-env');
  });
});

describe('startRun makes the run current for the code that follows', () => {
  // Each case runs in its own async context, as separate requests or scripts would.
  const isolated = <T>(fn: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) =>
      setImmediate(() => {
        fn().then(resolve, reject);
      }),
    );

  it('activeRun() and nested: true see it, across awaits, until it finishes', () =>
    isolated(async () => {
      const logger = new InMemoryLogger();
      expect(activeRun()).toBeUndefined();
      const run = logger.startRun({ name: 'script', experiment: 'iris' });
      expect(activeRun()).toBe(run);
      await tick();
      expect(activeRun()).toBe(run);
      const child = logger.startRun({ name: 'child', nested: true });
      expect(child.parentId).toBe(run.id);
      expect(child.experiment).toBe('iris');
      expect(activeRun()).toBe(child);
      await child.finish();
      expect(activeRun()).toBe(run);
      await run.finish();
      expect(activeRun()).toBeUndefined();
      expect(() => logger.startRun({ nested: true })).toThrow(/needs an active run/);
    }));

  it('a function called after startRun sees it; a finished run is never current, wherever it was finished', () =>
    isolated(async () => {
      const logger = new InMemoryLogger();
      const seen = (): Run | undefined => activeRun();
      const run = logger.startRun({ name: 'outer' });
      expect(seen()).toBe(run);
      // Finished from another async context (a timer): still not current here afterwards.
      await new Promise<void>((resolve) => setTimeout(() => void run.finish().then(resolve), 1));
      expect(run.status).toBe('success');
      expect(activeRun()).toBeUndefined();
    }));

  it('inside withRun, a nested startRun becomes current until it finishes, then the withRun run again', () =>
    isolated(async () => {
      const logger = new InMemoryLogger();
      await withRun(logger, { name: 'scope' }, async (scope) => {
        const inner = logger.startRun({ name: 'inner', nested: true });
        await tick();
        expect(activeRun()).toBe(inner);
        await inner.finish();
        expect(activeRun()).toBe(scope);
      });
      expect(activeRun()).toBeUndefined();
    }));

  it('await using: current inside the block, not after it', () =>
    isolated(async () => {
      const logger = new InMemoryLogger();
      let inside: Run | undefined;
      let nestedParent: string | undefined;
      {
        await using run = logger.startRun({ name: 'scoped' });
        await tick();
        inside = activeRun();
        await using child = logger.startRun({ name: 'child', nested: true });
        nestedParent = child.parentId;
        expect(inside).toBe(run);
        expect(nestedParent).toBe(run.id);
      }
      expect(activeRun()).toBeUndefined();
      expect(logger.getRun('scoped')!.status).toBe('success');
    }));

  it('activate: false leaves the current run alone', () =>
    isolated(async () => {
      const logger = new InMemoryLogger();
      const run = logger.startRun({ name: 'quiet', activate: false });
      expect(activeRun()).toBeUndefined();
      await run.finish();
    }));

  it('withRun does not leak its run into the code after it', () =>
    isolated(async () => {
      const logger = new InMemoryLogger();
      await withRun(logger, { name: 'a' }, () => undefined);
      expect(activeRun()).toBeUndefined();
      expect(() => logger.startRun({ name: 'b', nested: true })).toThrow(/needs an active run/);
    }));
});

describe('HTTP auto-instrumentation after startRun (real @opentelemetry/instrumentation-http)', () => {
  const spanExporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] });
  const loggerProvider = new LoggerProvider({ processors: [new CountingBatchLogRecordProcessor({ exporter: new InMemoryLogRecordExporter() })] });
  const meterProvider = new MeterProvider();
  let http: typeof Http;
  let server: Http.Server;
  let url: string;
  let unregister: () => void;

  beforeAll(async () => {
    installContextManager();
    unregister = registerInstrumentations({ tracerProvider, instrumentations: [new HttpInstrumentation()] });
    // required after the instrumentation is registered, as an app's --import setup file arranges
    http = createRequire(import.meta.url)('node:http') as typeof Http;
    server = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(async () => {
    unregister();
    await new Promise((resolve) => server.close(resolve));
    await Promise.all([tracerProvider.shutdown(), loggerProvider.shutdown(), meterProvider.shutdown()]);
  });

  // Resolves once the instrumentation has ended the request's client span.
  const get = async (path: string): Promise<void> => {
    await new Promise<void>((resolve, reject) => {
      http
        .get(url + path, (res) => {
          res.resume();
          res.on('end', resolve);
        })
        .on('error', reject);
    });
    for (let i = 0; i < 200 && findClient(path) === undefined; i++) await new Promise((r) => setTimeout(r, 10));
  };

  const spans = (): ReadableSpan[] => spanExporter.getFinishedSpans();
  const byName = (name: string): ReadableSpan => {
    const span = spans().find((s) => s.name === name);
    if (span === undefined) throw new Error(`no span ${name} among ${spans().map((s) => s.name).join(', ')}`);
    return span;
  };
  const findClient = (path: string): ReadableSpan | undefined => spans().find((s) => s.kind === SpanKind.CLIENT && s.attributes['url.full'] === url + path);
  const clientSpan = (path: string): ReadableSpan => {
    const span = findClient(path);
    if (span === undefined) throw new Error(`no client span for ${path} among ${JSON.stringify(spans().map((s) => [s.name, s.kind, s.attributes['url.full']]))}`);
    return span;
  };

  it('an HTTP call made after startRun() nests under the run span; one made after finish() does not', () =>
    new Promise<void>((resolve, reject) =>
      setImmediate(() => {
        void (async () => {
          // createLoggerFromEnv's shape: a CompositeLogger with the OTel backend among others.
          const logger = new CompositeLogger([new InMemoryLogger(), new OtelLogger({ tracerProvider, loggerProvider, meterProvider })]);
          const run = logger.startRun({ name: 'fit', experiment: 'http' });
          await get('during');
          const child = logger.startRun({ name: 'eval', nested: true });
          await get('child');
          await child.finish();
          await get('after-child');
          await run.finish();
          expect(trace.getActiveSpan()).toBeUndefined();
          await get('after');
          await logger.shutdown();

          const fit = byName('fit');
          const evalSpan = byName('eval');
          expect(evalSpan.parentSpanContext?.spanId).toBe(fit.spanContext().spanId);
          expect(clientSpan('during').parentSpanContext?.spanId).toBe(fit.spanContext().spanId);
          expect(clientSpan('during').spanContext().traceId).toBe(fit.spanContext().traceId);
          expect(clientSpan('child').parentSpanContext?.spanId).toBe(evalSpan.spanContext().spanId);
          expect(clientSpan('after-child').parentSpanContext?.spanId).toBe(fit.spanContext().spanId);
          expect(clientSpan('after').spanContext().traceId).not.toBe(fit.spanContext().traceId);
          expect(clientSpan('after').parentSpanContext).toBeUndefined();
        })().then(resolve, reject);
      }),
    ));

  it('await using: HTTP inside the block nests under the run', () =>
    new Promise<void>((resolve, reject) =>
      setImmediate(() => {
        void (async () => {
          const logger = new OtelLogger({ tracerProvider, loggerProvider, meterProvider });
          {
            await using _run = logger.startRun({ name: 'scoped-fit' });
            await get('scoped');
          }
          expect(trace.getActiveSpan()).toBeUndefined();
          await get('scoped-after');
          await logger.shutdown();
          const fit = byName('scoped-fit');
          expect(clientSpan('scoped').parentSpanContext?.spanId).toBe(fit.spanContext().spanId);
          expect(clientSpan('scoped-after').spanContext().traceId).not.toBe(fit.spanContext().traceId);
        })().then(resolve, reject);
      }),
    ));
});
