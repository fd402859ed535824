/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// Checks of what a user sees in MLflow's UI (MLflow 3.17.2), read from the page Chromium rendered:
// the experiment's view, the runs table's tree, a run's Overview (status, params, tags, parent) and
// its metric charts (the points each chart plots). Each check waits for the page to render, reads it
// once it has settled, and throws a UiCheckError saying what it expected and what the page showed.
//
// The run page's tabs are checked through RUN_PAGE_CHECKS: a new tab's check is one more entry there
// and one more field of RunExpectations.
import type { Locator, Page } from 'playwright-core';

export class UiCheckError extends Error {
  override name = 'UiCheckError';
}

/** How long a page may take to render what a check waits for (the UI's bundle is large; 2 shared cores). */
const RENDER_MILLIS = 60_000;
/** A list (rows, charts) counts as settled once it has not changed for this long. */
const SETTLE_MILLIS = 1_500;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `read` until `done(value)` holds or `timeoutMillis` passes; returns the last value read. */
async function pollUntil<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMillis: number): Promise<T> {
  const deadline = Date.now() + timeoutMillis;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await sleep(250);
  }
}

/** Reads `read` until two reads SETTLE_MILLIS apart agree (or `timeoutMillis` passes). */
async function settled<T>(read: () => Promise<T>, timeoutMillis = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMillis;
  let last = JSON.stringify(await read());
  for (;;) {
    await sleep(SETTLE_MILLIS);
    const value = await read();
    const now = JSON.stringify(value);
    if (now === last || Date.now() > deadline) return value;
    last = now;
  }
}

export function experimentUrl(trackingUri: string, experimentId: string): string {
  return `${trackingUri}/#/experiments/${experimentId}`;
}

// ---- the experiment page ---------------------------------------------------------------------

/** The labels of the experiment's side navigation, and the path the page settled on. */
async function experimentNav(page: Page): Promise<{ nav: string[]; path: string }> {
  const nav = await page
    .locator('nav')
    .allInnerTexts()
    .then((texts) => texts.flatMap((t) => t.split('\n').map((l) => l.trim())).filter((l) => l !== ''));
  return { nav, path: new URL(page.url()).hash.split('?')[0] ?? '' };
}

/** Waits until the experiment page has rendered its side navigation (both views list "Traces"). */
async function experimentPageRendered(page: Page, experimentName: string): Promise<{ nav: string[]; path: string }> {
  const seen = await pollUntil(
    async () => ({ ...(await experimentNav(page)), title: await page.locator('body').innerText().catch(() => '') }),
    (s) => s.nav.includes('Traces') && s.title.includes(experimentName),
    RENDER_MILLIS,
  );
  if (!seen.title.includes(experimentName)) throw new UiCheckError(`the page never showed the experiment "${experimentName}" (path ${seen.path})`);
  return settled(() => experimentNav(page), 10_000);
}

/** GenAI-only sections of the experiment navigation (MLflow 3.17.2). */
const GENAI_SECTIONS = ['Overview', 'Observability', 'Sessions', 'Evaluation', 'Judges', 'Evaluation runs'];

/**
 * The experiment is shown as model training: its navigation is Runs / Models / Traces (none of the
 * GenAI sections), the page is the runs table, and the table lists runs.
 */
export async function checkModelTrainingView(page: Page, expected: { experimentName: string }): Promise<void> {
  const { nav, path } = await experimentPageRendered(page, expected.experimentName);
  const genai = GENAI_SECTIONS.filter((s) => nav.includes(s));
  if (genai.length > 0 || !nav.includes('Runs')) {
    throw new UiCheckError(`experiment "${expected.experimentName}" is shown in the GenAI view (navigation: ${nav.join(', ')}; path ${path}), not as model training`);
  }
  if (!/\/experiments\/[^/]+\/runs$/.test(path)) throw new UiCheckError(`experiment "${expected.experimentName}" opened on ${path}, not on its runs table`);
  const rows = await pollUntil(() => runRows(page), (r) => r.length > 0, RENDER_MILLIS);
  if (rows.length === 0) throw new UiCheckError(`the runs table of "${expected.experimentName}" shows no run`);
}

/** Clicks the sidebar's GenAI / Model training switch to "Model training" (MLflow keeps the choice in the browser). */
export async function switchToModelTraining(page: Page): Promise<void> {
  // The GenAI view greets a new user with a "Detect Issues" tip that holds the page's pointer events
  // until it is dismissed, as a user would.
  const gotIt = page.getByRole('button', { name: 'Got it', exact: true });
  if (await gotIt.isVisible()) await gotIt.click();
  await page.locator('[role="button"]', { has: page.getByText('Model training', { exact: true }) }).click();
}

// ---- the runs table --------------------------------------------------------------------------

interface RunRow {
  name: string;
  runId: string;
  /** Left edge of the run name: nested runs are indented. */
  x: number;
  y: number;
  expandable: boolean;
}

function runRows(page: Page): Promise<RunRow[]> {
  return page.evaluate(() =>
    [...document.querySelectorAll('div[role="row"][row-id]')]
      .flatMap((row) => {
        const link = row.querySelector<HTMLAnchorElement>('a[href*="/runs/"]');
        if (link === null) return []; // the grid's pinned-column half of the same row
        const box = link.getBoundingClientRect();
        return [
          {
            name: (link.textContent ?? '').trim(),
            runId: row.getAttribute('row-id') ?? '',
            x: Math.round(box.x),
            y: Math.round(row.getBoundingClientRect().y),
            expandable: row.querySelector('button[data-component-id*="runnamecellrenderer"]') !== null,
          },
        ];
      })
      .sort((a, b) => a.y - b.y),
  );
}

/** The runs shown nested right under `parent`, in table order (a parent that has no expander shows none). */
function childrenShown(rows: RunRow[], parent: string): string[] | undefined {
  const i = rows.findIndex((r) => r.name === parent);
  if (i < 0) return undefined;
  const out: string[] = [];
  for (const row of rows.slice(i + 1)) {
    if (row.x <= rows[i]!.x) break;
    out.push(row.name);
  }
  return out;
}

/**
 * In the runs table, `parent` is a top-level run and, expanded, shows exactly `children` nested
 * under it (indented, right below it), in any order.
 */
export async function checkRunTree(page: Page, expected: { parent: string; children: string[] }): Promise<void> {
  const rows = await pollUntil(() => runRows(page), (r) => r.some((row) => row.name === expected.parent), RENDER_MILLIS);
  const parentRow = rows.find((r) => r.name === expected.parent);
  if (parentRow === undefined) throw new UiCheckError(`the runs table has no run "${expected.parent}" (it shows ${rows.map((r) => r.name).join(', ') || 'none'})`);
  if (parentRow.x > Math.min(...rows.map((r) => r.x))) throw new UiCheckError(`"${expected.parent}" is itself shown nested under another run`);
  if ((childrenShown(rows, expected.parent) ?? []).length === 0) {
    if (!parentRow.expandable && expected.children.length === 0) return;
    if (!parentRow.expandable) throw new UiCheckError(`"${expected.parent}" shows no nested runs: it has no expander in the runs table`);
    await page
      .locator('div[role="row"][row-id]', { has: page.locator(`a[href*="/runs/${parentRow.runId}"]`) })
      .locator('button[data-component-id*="runnamecellrenderer"]')
      .click();
  }
  const shown = await settled(async () => childrenShown(await runRows(page), expected.parent) ?? []);
  const want = [...expected.children].sort();
  const got = [...shown].sort();
  if (JSON.stringify(want) !== JSON.stringify(got)) {
    const missing = want.filter((c) => !got.includes(c));
    const extra = got.filter((c) => !want.includes(c));
    throw new UiCheckError(
      `runs nested under "${expected.parent}": ${got.length} shown (${got.join(', ') || 'none'}); ` +
        `missing ${missing.join(', ') || 'none'}; unexpected ${extra.join(', ') || 'none'}`,
    );
  }
}

// ---- the run page ------------------------------------------------------------------------------

export type RunPageTab = 'overview' | 'model-metrics' | 'system-metrics';

export function runUrl(trackingUri: string, experimentId: string, runId: string, tab: RunPageTab = 'overview'): string {
  const base = `${trackingUri}/#/experiments/${experimentId}/runs/${runId}`;
  return tab === 'overview' ? base : `${base}/${tab}`;
}

export interface OverviewExpectation {
  /** As the page words it: Finished, Failed, Killed, Running. */
  status: string;
  params: Record<string, string>;
  /** The run's tags the page lists (MLflow hides its own `mlflow.*` tags). */
  tags: Record<string, string>;
  /** Name of the parent run the page links to; undefined for a top-level run. */
  parent: string | undefined;
}

interface OverviewSeen {
  status: string | undefined;
  params: Record<string, string> | undefined;
  tags: Record<string, string>;
  parent: string | undefined;
}

function readOverview(page: Page): Promise<OverviewSeen> {
  return page.evaluate(() => {
    const valueOf = (label: string): Element | null => document.querySelector(`[data-testid="key-value-${label}"]`)?.lastElementChild ?? null;
    const status = valueOf('Status')?.textContent?.trim();
    const parentLink = valueOf('Parent run')?.querySelector('a');
    const paramsTable = [...document.querySelectorAll('[role="table"]')].find((t) => t.querySelector('[data-component-id*="runviewparamstable"]') !== null);
    let params: Record<string, string> | undefined;
    if (paramsTable !== undefined) {
      params = {};
      for (const row of paramsTable.querySelectorAll('[role="row"]')) {
        const cells = row.querySelectorAll('[role="cell"]');
        if (cells.length >= 2) params[(cells[0]!.textContent ?? '').trim()] = (cells[1]!.textContent ?? '').trim();
      }
    } else if (/No parameters recorded/.test(document.body.innerText)) {
      params = {};
    }
    const tags: Record<string, string> = {};
    for (const tag of document.querySelectorAll('[role="status"][title][data-component-id*="keyvaluetag"]')) {
      const [key, value] = [...tag.querySelectorAll('span[title]')].map((s) => s.getAttribute('title') ?? '');
      if (key !== undefined) tags[key] = value ?? '';
    }
    return { status, params, tags, parent: parentLink?.textContent?.trim() };
  });
}

/** The run's Overview: its status, params (all of them), tags and parent link. */
export async function checkRunOverview(page: Page, expected: OverviewExpectation): Promise<void> {
  await pollUntil(() => readOverview(page), (s) => s.status !== undefined && s.status !== '' && s.params !== undefined, RENDER_MILLIS);
  const seen = await settled(() => readOverview(page), 10_000);
  const problems: string[] = [];
  if (seen.status !== expected.status) problems.push(`status ${JSON.stringify(seen.status)}, expected ${JSON.stringify(expected.status)}`);
  if (JSON.stringify(sorted(seen.params ?? {})) !== JSON.stringify(sorted(expected.params))) problems.push(`params ${JSON.stringify(sorted(seen.params ?? {}))}, expected ${JSON.stringify(sorted(expected.params))}`);
  if (JSON.stringify(sorted(seen.tags)) !== JSON.stringify(sorted(expected.tags))) problems.push(`tags ${JSON.stringify(sorted(seen.tags))}, expected ${JSON.stringify(sorted(expected.tags))}`);
  if (seen.parent !== expected.parent) problems.push(`parent run ${JSON.stringify(seen.parent)}, expected ${JSON.stringify(expected.parent)}`);
  if (problems.length > 0) throw new UiCheckError(`run Overview: ${problems.join('; ')}`);
}

function sorted(record: Record<string, string>): Array<[string, string]> {
  return Object.entries(record).sort(([a], [b]) => a.localeCompare(b));
}

/** Per metric key, the points its chart must plot: [step, value], in step order. */
export type ChartsExpectation = Record<string, Array<[number, number]>>;

/** Titles (metric keys) of the chart cards on the page. */
function chartKeys(page: Page): Promise<string[]> {
  return page.evaluate(() => [...document.querySelectorAll('h4[title]')].map((h) => h.getAttribute('title') ?? '').sort());
}

/** The title of the chart card of `key` (metric keys are letters, digits and `_ - . / :` and space: no CSS escaping needed beyond quotes). */
function chartTitle(page: Page, key: string): Locator {
  return page.locator(`h4[title=${JSON.stringify(key)}]`);
}

interface PlotSeen {
  /** The plotted series: x (steps) and y of each trace drawn as a line. */
  traces: Array<{ x: number[]; y: number[] }>;
  /** Points in the first drawn line's SVG path (1 for a lone marker). */
  drawnPoints: number;
}

async function readPlot(title: Locator): Promise<PlotSeen | undefined> {
  return title.evaluate((h) => {
    let card: Element | null = h;
    let plot: (Element & { data?: Array<{ x?: unknown[]; y?: unknown[]; mode?: string }> }) | null = null;
    while (card !== null && plot === null) {
      card = card.parentElement;
      plot = card?.querySelector('.js-plotly-plot') ?? null;
    }
    if (plot === null || !Array.isArray(plot.data)) return undefined;
    const traces = plot.data.filter((t) => (t.mode ?? '').includes('lines')).map((t) => ({ x: (t.x ?? []).map(Number), y: (t.y ?? []).map(Number) }));
    const d = plot.querySelector('path.js-line')?.getAttribute('d') ?? '';
    return { traces, drawnPoints: (d.match(/[ML]/g) ?? []).length };
  });
}

/**
 * On the Model metrics tab, each expected key has a chart, and the chart plots exactly the expected
 * points (steps and values) as a drawn line.
 */
export async function checkMetricCharts(page: Page, expected: ChartsExpectation): Promise<void> {
  await checkCharts(page, expected, 'Model metrics', (key) => [key]);
}

/**
 * On the System metrics tab, each expected `system/*` key has a chart (titled with the key, or with
 * it less `system/`) that plots the expected values in step order as a drawn line. MLflow may plot
 * system metrics against time: the x values are then the samples' times, in order, not the steps.
 */
export async function checkSystemCharts(page: Page, expected: ChartsExpectation): Promise<void> {
  await checkCharts(page, expected, 'System metrics', (key) => [key, key.replace(/^system\//, '')], true);
}

/**
 * Every chart title the tab has: MLflow renders chart cards as they scroll into view, so the page is
 * scrolled down until no new title appears.
 */
async function allChartKeys(page: Page): Promise<string[]> {
  await scrollToTop(page);
  const seen = new Set(await settled(() => chartKeys(page), 10_000));
  for (let i = 0; i < 40; i++) {
    const before = seen.size;
    const last = page.locator('h4[title]').last();
    await last.scrollIntoViewIfNeeded();
    await page.mouse.wheel(0, 600);
    await page.waitForTimeout(400);
    for (const key of await chartKeys(page)) seen.add(key);
    if (seen.size === before && i > 2) break;
  }
  return [...seen].sort();
}

async function scrollToTop(page: Page): Promise<void> {
  await page.mouse.move(600, 500);
  await page.evaluate(() => document.querySelectorAll('*').forEach((e) => e.scrollTop > 0 && e.scrollTo(0, 0)));
  await page.waitForTimeout(300);
}

/** The chart card title of `key`, scrolling from the top until MLflow has rendered it. */
async function findChartTitle(page: Page, key: string): Promise<Locator | undefined> {
  await page.mouse.move(600, 500);
  const title = chartTitle(page, key).first();
  if ((await title.count()) > 0) return title;
  await scrollToTop(page);
  for (let i = 0; i < 40; i++) {
    if ((await title.count()) > 0) return title;
    await page.mouse.wheel(0, 400);
    await page.waitForTimeout(300);
  }
  return undefined;
}

async function checkCharts(page: Page, expected: ChartsExpectation, tab: string, titlesOf: (key: string) => string[], anyIncreasingX = false): Promise<void> {
  await pollUntil(() => chartKeys(page), (keys) => keys.length > 0, RENDER_MILLIS);
  const keys = await allChartKeys(page);
  const problems: string[] = [];
  for (const [key, points] of Object.entries(expected)) {
    const shownAs = titlesOf(key).find((t) => keys.includes(t));
    if (shownAs === undefined) {
      problems.push(`no chart for "${key}" (charts shown: ${keys.join(', ')})`);
      continue;
    }
    const title = await findChartTitle(page, shownAs);
    if (title === undefined) {
      problems.push(`the chart of "${key}" is not rendered`);
      continue;
    }
    await title.scrollIntoViewIfNeeded();
    const plot = await pollUntil(() => readPlot(title), (p) => p !== undefined && p.traces.length > 0 && p.drawnPoints > 0, 20_000);
    if (plot === undefined || plot.traces.length === 0) {
      problems.push(`the chart of "${key}" plots nothing`);
      continue;
    }
    const want = { x: points.map(([step]) => step), y: points.map(([, value]) => value) };
    const trace = plot.traces[0]!;
    const xOk = JSON.stringify(trace.x) === JSON.stringify(want.x) || (anyIncreasingX && trace.x.length === want.x.length && trace.x.every((x, i) => i === 0 || x > trace.x[i - 1]!));
    if (!xOk || JSON.stringify(trace.y) !== JSON.stringify(want.y)) {
      problems.push(`the chart of "${key}" plots ${trace.x.length} points (x ${trace.x.slice(0, 3).join(', ')}…, values ${trace.y.slice(0, 3).join(', ')}…), expected ${want.x.length} (steps ${want.x.slice(0, 3).join(', ')}…, values ${want.y.slice(0, 3).join(', ')}…)`);
    } else if (points.length > 1 && plot.drawnPoints < 2) {
      problems.push(`the chart of "${key}" has its points but draws no line`);
    }
  }
  if (problems.length > 0) throw new UiCheckError(`${tab}: ${problems.join('; ')}`);
}

// ---- the run page, tab by tab ------------------------------------------------------------------

/** What a run's page should show, one field per checked tab. */
export interface RunExpectations {
  overview?: OverviewExpectation;
  charts?: ChartsExpectation;
  /** The System metrics tab: `system/*` key → its samples as [step, value]. */
  systemCharts?: ChartsExpectation;
}

/** One check per tab of the run page. */
export const RUN_PAGE_CHECKS: {
  [K in keyof Required<RunExpectations>]: { tab: RunPageTab; check: (page: Page, expected: Required<RunExpectations>[K]) => Promise<void> };
} = {
  overview: { tab: 'overview', check: checkRunOverview },
  charts: { tab: 'model-metrics', check: checkMetricCharts },
  systemCharts: { tab: 'system-metrics', check: checkSystemCharts },
};

/** Opens each tab of the run's page that `expected` names and runs its check; `afterEach` sees each tab (for screenshots). */
export async function checkRunPage(
  page: Page,
  at: { trackingUri: string; experimentId: string; runId: string },
  expected: RunExpectations,
  afterEach?: (tab: RunPageTab, error: unknown) => Promise<void>,
): Promise<void> {
  for (const name of Object.keys(RUN_PAGE_CHECKS) as Array<keyof RunExpectations>) {
    const want = expected[name];
    if (want === undefined) continue;
    const { tab, check } = RUN_PAGE_CHECKS[name] as { tab: RunPageTab; check: (page: Page, expected: unknown) => Promise<void> };
    await page.goto(runUrl(at.trackingUri, at.experimentId, at.runId, tab));
    let error: Error | undefined;
    try {
      await check(page, want);
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err));
    }
    await afterEach?.(tab, error);
    if (error !== undefined) throw error;
  }
}
