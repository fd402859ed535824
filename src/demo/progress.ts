// Progress for the demo: one cli-progress bar per trial on standard error while it trains. Other
// output meant for the terminal meanwhile (the console backend's lines) goes through `write`, which
// hands it to the multibar so it is printed above the bars instead of through them.

import { MultiBar, Presets } from 'cli-progress';
import type { SingleBar } from 'cli-progress';

export interface TrialRow {
  name: string;
  /** Short description of the trial's params, e.g. `lr=0.2 l2=0.001`. */
  label: string;
}

export interface TrialProgress {
  /** Prints one line (without its newline) without disturbing the bars. */
  write(line: string): void;
  start(index: number): void;
  update(index: number, epoch: number, metrics: string): void;
  finish(index: number, ok: boolean, metrics?: string): void;
  /** Draws the final state and gives the terminal back; later `write`s go straight to standard error. */
  stop(): void;
}

/** No bars (quiet, or standard error is not a terminal): `write` prints straight to standard error. */
export class PlainProgress implements TrialProgress {
  private readonly _silent: boolean;

  constructor(silent = false) {
    this._silent = silent;
  }

  write(line: string): void {
    if (!this._silent) process.stderr.write(line + '\n');
  }
  start(): void {}
  update(): void {}
  finish(): void {}
  stop(): void {}
}

export class BarProgress implements TrialProgress {
  private readonly _multibar: MultiBar;
  private readonly _bars: SingleBar[];
  private readonly _epochs: number;
  private _active = true;

  constructor(rows: readonly TrialRow[], epochs: number) {
    this._epochs = epochs;
    const nameWidth = Math.max(...rows.map((r) => r.name.length));
    const labelWidth = Math.max(...rows.map((r) => r.label.length));
    this._multibar = new MultiBar(
      {
        stream: process.stderr,
        format: ' {state} {name} {bar} {epoch} │ {label} │ {metrics}',
        barsize: 24,
        hideCursor: true,
        gracefulExit: true,
        clearOnComplete: false,
        // Redraw every bar on every frame: lines logged above the bars shift them down.
        forceRedraw: true,
        fps: 15,
      },
      Presets.shades_classic,
    );
    const width = String(epochs).length;
    this._bars = rows.map((row) =>
      this._multibar.create(epochs, 0, {
        state: '·',
        name: row.name.padEnd(nameWidth),
        label: row.label.padEnd(labelWidth),
        epoch: `${'0'.padStart(width)}/${epochs} epochs`,
        metrics: 'queued',
      }),
    );
  }

  write(line: string): void {
    if (!this._active) {
      process.stderr.write(line + '\n');
      return;
    }
    // The multibar turns line wrapping off and prints logged text over the old bar lines: so wrap
    // long lines here, and clear the rest of each line (`ESC[K`) so no bar remnants stay behind.
    const width = Math.max(20, (process.stderr.columns ?? 80) - 1);
    const chars = Array.from(line);
    for (let i = 0; i === 0 || i < chars.length; i += width) {
      this._multibar.log(chars.slice(i, i + width).join('') + '\x1b[K\n');
    }
  }

  start(index: number): void {
    this._bars[index]?.update(0, { state: '▸', metrics: 'starting' });
  }

  update(index: number, epoch: number, metrics: string): void {
    this._bars[index]?.update(epoch, { epoch: this._epochText(epoch), metrics });
  }

  finish(index: number, ok: boolean, metrics?: string): void {
    const bar = this._bars[index];
    if (bar === undefined) return;
    bar.update({ state: ok ? '✔' : '✘', ...(metrics !== undefined ? { metrics } : {}) });
  }

  stop(): void {
    if (!this._active) return;
    // stop() draws the bars but not lines still buffered by log(): flush them first.
    this._multibar.update();
    this._multibar.stop();
    this._active = false;
  }

  private _epochText(epoch: number): string {
    return `${String(epoch).padStart(String(this._epochs).length)}/${this._epochs} epochs`;
  }
}
