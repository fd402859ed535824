// examples/python/runtel_otel.py follows the same environment contract as the TypeScript side
// (issue 13): a run with no parent in a launched Python process nests by RUNTEL_PARENT_RUN_ID, its
// span continues TRACEPARENT/TRACESTATE, ranks become tags and the name, parent=TOP_LEVEL opts out,
// child_env() writes the contract, and bad values warn once. Real Python processes in the example
// venv, exporting to a local OTLP sink; the script reports what its SDK spans hold.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostname } from 'node:os';
import { examplePython, runCommand } from '../deploy/helpers.js';
import { setupOrFail, startOtlpSink } from '../otel/real/util.js';
import type { OtlpSink } from '../otel/real/util.js';
import { REPO, cleanEnv } from './helpers.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const PARENT = 'ab'.repeat(16);

interface PyRunInfo {
  id: string;
  name: string;
  parent_id: string | null;
  experiment: string;
  trace_id: string;
  parent_span: { trace_id: string; span_id: string; remote: boolean } | null;
  attributes: Record<string, unknown>;
  span_id: string;
  child_env: Record<string, string>;
}

const SCRIPT = [
  'import json',
  'from runtel_otel import RuntelOtel, TOP_LEVEL',
  'def info(run):',
  '    sc = run.span.get_span_context()',
  '    p = run.span.parent',
  '    return {"id": run.id, "name": run.name, "parent_id": run.parent_id, "experiment": run.experiment,',
  '            "trace_id": format(sc.trace_id, "032x"), "span_id": format(sc.span_id, "016x"),',
  '            "parent_span": None if p is None else {"trace_id": format(p.trace_id, "032x"), "span_id": format(p.span_id, "016x"), "remote": p.is_remote},',
  '            "attributes": dict(run.span.attributes), "child_env": run.child_env()}',
  'otel = RuntelOtel()',
  'out = []',
  'for kind in ("inherit", "inherit", "top"):',
  '    run = otel.start_run(parent=TOP_LEVEL) if kind == "top" else otel.start_run()',
  '    out.append(info(run))',
  '    run.finish()',
  'otel.shutdown()',
  'print(json.dumps(out))',
].join('\n');

let sink: OtlpSink | undefined;
const ready = setupOrFail(async () => {
  examplePython();
  sink = await startOtlpSink();
});
afterAll(async () => sink?.close());

async function runPython(env: Record<string, string>): Promise<{ runs: PyRunInfo[]; stderr: string }> {
  const result = await runCommand(examplePython(), ['-c', SCRIPT], {
    cwd: join(REPO, 'examples', 'python'),
    env: cleanEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: sink!.url, OTEL_METRIC_EXPORT_INTERVAL: '60000', ...env }),
    timeoutMs: 60_000,
  });
  if (result.code !== 0) throw new Error(`python exited ${result.code}: ${result.stderr}`);
  return { runs: JSON.parse(result.stdout.trim().split('\n').at(-1)!) as PyRunInfo[], stderr: result.stderr };
}

describe('runtel_otel.py in a launched process', () => {
  it('nests by RUNTEL_PARENT_RUN_ID, continues TRACEPARENT (TRACESTATE kept), takes RUNTEL_EXPERIMENT and the rank; TOP_LEVEL opts out', async () => {
    ready();
    const { runs, stderr } = await runPython({
      RUNTEL_PARENT_RUN_ID: PARENT,
      RUNTEL_PARENT_RUN_NAME: 'sweep',
      RUNTEL_EXPERIMENT: 'xproc-py',
      TRACEPARENT: `00-${TRACE_ID}-${SPAN_ID}-01`,
      TRACESTATE: 'vendor=abc',
      RANK: '2',
      WORLD_SIZE: '4',
      LOCAL_RANK: '0',
    });
    expect(stderr).not.toMatch(/runtel:/);
    const [a, b, top] = runs as [PyRunInfo, PyRunInfo, PyRunInfo];
    for (const run of [a, b]) {
      expect(run).toMatchObject({ name: 'sweep-rank2', parent_id: PARENT, experiment: 'xproc-py', trace_id: TRACE_ID, parent_span: { trace_id: TRACE_ID, span_id: SPAN_ID, remote: true } });
      expect(run.attributes).toMatchObject({
        'ml.run.parent_id': PARENT,
        'ml.experiment.name': 'xproc-py',
        'ml.tag.runtel.rank': '2',
        'ml.tag.runtel.world_size': '4',
        'ml.tag.runtel.local_rank': '0',
        'ml.tag.runtel.host': hostname(),
      });
      expect(run.child_env).toEqual({
        RUNTEL_PARENT_RUN_ID: run.id,
        RUNTEL_PARENT_RUN_NAME: 'sweep-rank2',
        RUNTEL_EXPERIMENT: 'xproc-py',
        TRACEPARENT: `00-${TRACE_ID}-${run.span_id}-01`,
        TRACESTATE: 'vendor=abc',
      });
    }
    expect(top.parent_id).toBeNull();
    expect(top.parent_span).toBeNull();
    expect(top.trace_id).not.toBe(TRACE_ID);
    expect(top.attributes['ml.run.parent_id']).toBeUndefined();
    // Still a rank of the job: tagged and named by its rank.
    expect(top.name).toBe(`run-${top.id.slice(0, 8)}-rank2`);
  });

  it('bad input warns once per process: a malformed TRACEPARENT leaves the runs nested by id in a new trace; a malformed id leaves them top-level', async () => {
    ready();
    const bad = await runPython({ RUNTEL_PARENT_RUN_ID: PARENT, TRACEPARENT: 'not-a-traceparent' });
    expect(bad.stderr.match(/runtel: ignoring TRACEPARENT="not-a-traceparent": not a W3C traceparent/g)).toHaveLength(1);
    for (const run of bad.runs.slice(0, 2)) {
      expect(run.parent_id).toBe(PARENT);
      expect(run.parent_span).toBeNull();
      expect(run.name).toBe(`run-${run.id.slice(0, 8)}`);
    }
    const badId = await runPython({ RUNTEL_PARENT_RUN_ID: 'xyz', RUNTEL_EXPERIMENT: 'e' });
    expect(badId.stderr.match(/runtel: ignoring RUNTEL_PARENT_RUN_ID="xyz": a run id is 32 hex characters; the run is top-level/g)).toHaveLength(1);
    expect(badId.runs.map((r) => r.parent_id)).toEqual([null, null, null]);
  });
});
