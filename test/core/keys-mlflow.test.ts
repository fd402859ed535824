// The key rule is MLflow's (the strictest backend): checked here against MLflow's own validation code
// (mlflow.utils.validation, from the provisioned MLflow venv) for every Unicode code point, and by a
// round trip through a real MLflow server for a few keys in other scripts (issue 14, item 11).

import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { CompositeLogger, InMemoryLogger, MlflowLogger } from '../../src/index.js';
import { validateKey } from '../../src/core/validation.js';
import { mlflowPython } from '../services/index.js';
import { readBackWithPython, useMlflowServer } from '../mlflow/helpers.js';

const PYTHON_CHECK = `
import json, sys, unicodedata
from mlflow.utils.validation import _validate_metric_name, _validate_param_name, _validate_tag_name
out = {"unicode": unicodedata.unidata_version, "accepted": [], "unassigned": []}
for cp in json.load(sys.stdin):
    ch = chr(cp)
    if unicodedata.category(ch) == "Cn":
        out["unassigned"].append(cp)
        continue
    key = "k" + ch + "k"
    ok = []
    for validate in (_validate_metric_name, _validate_param_name, _validate_tag_name):
        try:
            validate(key)
            ok.append(True)
        except Exception:
            ok.append(False)
    if len(set(ok)) != 1:
        raise SystemExit(f"MLflow disagrees with itself on U+{cp:04X}: {ok}")
    if ok[0]:
        out["accepted"].append(cp)
print(json.dumps(out))
`;

function accepts(key: string): boolean {
  try {
    validateKey(key, 'metric');
    return true;
  } catch {
    return false;
  }
}

describe('metric, param and tag keys against MLflow 3 (its Python validation code)', () => {
  it('runtel accepts exactly the characters MLflow accepts, for every code point MLflow’s Python knows', () => {
    const codePoints: number[] = [];
    for (let cp = 0; cp < 0x110000; cp++) if (cp < 0xd800 || cp > 0xdfff) codePoints.push(cp);
    const stdout = execFileSync(mlflowPython(), ['-c', PYTHON_CHECK], { input: JSON.stringify(codePoints), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    const result = JSON.parse(stdout) as { unicode: string; accepted: number[]; unassigned: number[] };
    const mlflowAccepts = new Set(result.accepted);
    const unassigned = new Set(result.unassigned);
    const disagree: string[] = [];
    for (const cp of codePoints) {
      if (unassigned.has(cp)) continue;
      if (accepts(`k${String.fromCodePoint(cp)}k`) !== mlflowAccepts.has(cp)) disagree.push(`U+${cp.toString(16).toUpperCase().padStart(4, '0')}`);
    }
    expect(disagree).toEqual([]);
    // Letters of other scripts, as the README says.
    for (const key of ['précision', 'val/精度', 'Ключ:1', 'λ_2', 'ﬁt']) expect(accepts(key), key).toBe(true);
    expect(result.accepted.length).toBeGreaterThan(100_000);
  });
});

describe('Unicode keys through a real MLflow server', () => {
  const ctx = useMlflowServer();

  it('a run with params, tags and metrics keyed in other scripts arrives whole (read back with MLflow’s Python client)', async () => {
    const keys = ['précision', 'val/精度', 'Ключ:1'];
    const memory = new InMemoryLogger();
    const logger = new CompositeLogger([memory, new MlflowLogger({ trackingUri: ctx.server.url })]);
    const run = logger.startRun({ name: 'unicode', experiment: 'unicode-keys', config: { taux_élevé: 0.1 }, tags: { équipe: 'ml' }, activate: false });
    keys.forEach((key, i) => run.logMetrics({ [key]: i + 0.5 }, { step: i }));
    await run.finish();
    await logger.shutdown();
    expect(logger.failureCounts()).toEqual({});

    const [py] = (await readBackWithPython(ctx.server.url, 'unicode-keys')).filter((r) => r.tags['runtel.run_id'] === run.id);
    expect(py).toBeDefined();
    expect(py!.status).toBe('FINISHED');
    expect(py!.params).toEqual({ taux_élevé: '0.1' });
    expect(py!.tags['équipe']).toBe('ml');
    for (const [i, key] of keys.entries()) expect(py!.metrics[key]!.map(([step, value]) => [step, value]), key).toEqual([[i, i + 0.5]]);
  });
});
