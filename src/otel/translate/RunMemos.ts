// What OtelRunTranslator remembers of each run: its state, the metric points it has seen (so a
// resent batch adds nothing) and how many records arrived against what its end counts. Bounded:
// the least recently active run is forgotten past `maxRuns`, and past `maxSeenPoints` in all the
// least recently active run with points forgets them first.

import type { RunStartedEvent } from '../../core/events.js';
import { SeenPoints } from './SeenPoints.js';

export interface RunMemo {
  started: boolean;
  /** Started from a record other than ml.run.start (pipelines reorder): the real one may still come. */
  provisional: boolean;
  finished: boolean;
  /** Finished `crashed` by whoever noticed it went silent (`crashed()`): if it speaks again, it is taken back. */
  crashed: boolean;
  /** Name, experiment and parent, for taking a crashed run back. */
  identity: Pick<RunStartedEvent, 'name' | 'experiment' | 'parentId'> | undefined;
  /** A crashed run this translator never saw start speaks again: its first start is a resume. */
  resumeNext: boolean;
  /** Metric points already seen, so a resent batch adds nothing. */
  seen: SeenPoints;
  /** Distinct ml.metric and ml.system records received since the run (re)started. */
  received: number;
  /** How many of them its end says it emitted (ATTR_RUN_METRIC_RECORDS_COUNT), once an end said it. */
  expected: number | undefined;
  /** Some of the points counted are not remembered (past the bounds, or forgotten): a resend of one would count again. */
  unremembered: boolean;
  /** Some of its records may come again (mayBeResent). */
  resendable: boolean;
}

export interface RunMemosOptions {
  maxRuns: number;
  maxSeenPointsPerRun: number;
  maxSeenPoints: number;
}

export class RunMemos {
  /** In order of last activity, the oldest first. */
  private readonly _runs = new Map<string, RunMemo>();
  private _seenTotal = 0;
  /** The run touched last (it is already the newest in `_runs`). */
  private _lastRunId: string | undefined;

  constructor(private readonly _options: RunMemosOptions) {}

  /** Metric points remembered, over all runs. */
  get seenPoints(): number {
    return this._seenTotal;
  }

  get(runId: string): RunMemo | undefined {
    return this._runs.get(runId);
  }

  /** The run's memo (a new one for a run not known), made the most recently active. */
  touch(runId: string): RunMemo {
    let memo = this._runs.get(runId);
    if (memo === undefined) {
      memo = { started: false, provisional: false, finished: false, crashed: false, identity: undefined, resumeNext: false, seen: new SeenPoints(), received: 0, expected: undefined, unremembered: false, resendable: false };
      this._runs.set(runId, memo);
      if (this._runs.size > this._options.maxRuns) {
        const [oldestId, oldest] = this._runs.entries().next().value!;
        this._seenTotal -= oldest.seen.size;
        this._runs.delete(oldestId);
      }
    } else if (this._lastRunId !== runId) {
      this._runs.delete(runId);
      this._runs.set(runId, memo);
    }
    this._lastRunId = runId;
    return memo;
  }

  /**
   * Counts a new point and remembers it. Past the run's bound it is counted only: without a resend
   * the count stays exact, and a large run's end need not wait out the bridge's window (mayBeResent).
   */
  remember(memo: RunMemo, key: string, step: number, time: number): void {
    memo.received++;
    if (memo.seen.size >= this._options.maxSeenPointsPerRun) {
      memo.unremembered = true;
      return;
    }
    if (this._seenTotal >= this._options.maxSeenPoints) this._forgetOldestPoints(memo);
    memo.seen.add(key, step, time);
    this._seenTotal++;
  }

  /** See OtelRunTranslator.complete. */
  complete(runId: string): boolean {
    const memo = this._runs.get(runId);
    return memo?.expected !== undefined && memo.received >= memo.expected && !(memo.resendable && memo.unremembered);
  }

  /** See OtelRunTranslator.mayBeResent. */
  mayBeResent(runId: string): void {
    const memo = this._runs.get(runId);
    if (memo !== undefined) memo.resendable = true;
  }

  /** Frees room for one point: the least recently active run with points forgets them. */
  private _forgetOldestPoints(keep: RunMemo): void {
    for (const memo of this._runs.values()) {
      if (memo === keep || memo.seen.size === 0) continue;
      this._forget(memo);
      return;
    }
    // Only the current run has points: it starts over.
    this._forget(keep);
  }

  private _forget(memo: RunMemo): void {
    this._seenTotal -= memo.seen.size;
    memo.seen.clear();
    memo.unremembered = true;
  }
}
