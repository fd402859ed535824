// Continuing a run W&B already has: live (a resumed run, a restarted exporter or bridge) after the
// lines it has, with its last `_step` and summary carried on and the points it has skipped; or as a
// replay (`runtel sync`), rebuilding the history and skipping the lines it has.

import { parseExtendedJson } from './extendedJson.js';
import type { RunHistory } from './history.js';
import type { ResumeStatus, WandbClient } from './WandbClient.js';

const HISTORY_PAGE_SIZE = 1000;

/** Continues a run W&B has: after its lines (live), skipping them (replay). */
export async function continueFrom(
client: WandbClient,
history: RunHistory,
run: { wandbId: string; entity: string | undefined; project: string },
status: ResumeStatus,
mode: { replay: boolean; findExistingRuns: boolean },
): Promise<void> {
  if (mode.replay) {
    history.skipBelow = status.historyLineCount;
    return;
  }
  history.nextIndex = status.historyLineCount;
  let lastStep = -1;
  for (const line of status.historyTail) {
    try {
      const step = (parseExtendedJson(line) as { _step?: unknown })._step;
      if (typeof step === 'number' && step > lastStep) lastStep = step;
    } catch {
      // skip an unreadable line
    }
  }
  history.nextStep = Math.max(lastStep + 1, lastStep < 0 ? status.historyLineCount : 0);
  if (status.summaryMetrics !== undefined) {
    try {
      const summary = parseExtendedJson(status.summaryMetrics);
      if (summary !== null && typeof summary === 'object') history.seedSummary(summary as Record<string, unknown>);
    } catch {
      // a summary that does not parse is rebuilt from new points
    }
  }
  // A restarted exporter or bridge is sent again what it had delivered: learn what W&B has.
  if (mode.findExistingRuns && run.entity !== undefined && status.historyLineCount > 0) {
    for (let from = 0; from < history.nextStep; from += HISTORY_PAGE_SIZE) {
      history.knowLines(await client.historyPage(run.entity, run.project, run.wandbId, from, Math.min(from + HISTORY_PAGE_SIZE, history.nextStep), HISTORY_PAGE_SIZE));
    }
  }
}
