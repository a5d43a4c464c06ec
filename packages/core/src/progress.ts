/**
 * Progress reporting. Long work (loading, training, evaluation, data building) reports through this interface;
 * the CLI renders it as a bar with rate and ETA, tests pass `silentProgress`, and a library user can plug in
 * their own (a logger, a web UI).
 */

export interface ProgressTaskOptions {
  /** What is being done, e.g. "sft" or "medqa_usmle". */
  name: string;
  /** Total units, when known. */
  total?: number;
  /** Unit name for the rate, e.g. "step", "req", "tok". */
  unit?: string;
  /** Units already done (a resumed run starts here). */
  initial?: number;
}

export interface ProgressTask {
  /** Advance by `n` units (default 1) and optionally attach key/value info (loss, lr, ...). */
  tick(n?: number, info?: Record<string, string | number>): void;
  /** Finish the task (idempotent). */
  done(): void;
}

export interface ProgressReporter {
  start(options: ProgressTaskOptions): ProgressTask;
}

export const silentProgress: ProgressReporter = {
  start: () => ({ tick() {}, done() {} }),
};

/** Format seconds as `1h02m`, `3m05s` or `12s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

function formatInfo(info: Record<string, string | number>): string {
  return Object.entries(info)
    .map(
      ([k, v]) =>
        `${k}=${typeof v === "number" ? (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : Number(v.toPrecision(4))) : v}`,
    )
    .join(" ");
}

export interface BarOptions {
  stream?: NodeJS.WriteStream;
  /** Redraw at most this often (ms). */
  intervalMs?: number;
  width?: number;
  /** Force line-per-update output (non-TTY, CI logs). Defaults to `!stream.isTTY`. */
  plain?: boolean;
}

/**
 * A text progress bar: `sft  [#####.....]  50/100 step  3.2 step/s  ETA 16s  loss=1.23`. On a TTY it redraws
 * one line; elsewhere it prints a line at most every `intervalMs` (default 2 s) so CI logs stay short.
 */
export function createBarReporter(options: BarOptions = {}): ProgressReporter {
  const stream = options.stream ?? process.stderr;
  const plain = options.plain ?? !stream.isTTY;
  const interval = options.intervalMs ?? (plain ? 2000 : 100);
  const width = options.width ?? 24;
  return {
    start({ name, total, unit = "it", initial = 0 }) {
      const t0 = performance.now();
      let done = initial;
      let last = 0;
      let info: Record<string, string | number> = {};
      let finished = false;
      const render = (final: boolean) => {
        const elapsed = (performance.now() - t0) / 1000;
        const rate = elapsed > 0 ? (done - initial) / elapsed : 0;
        let bar = "";
        let eta = "";
        if (total !== undefined && total > 0) {
          const frac = Math.min(1, done / total);
          const filled = Math.round(frac * width);
          bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} ${unit}`;
          eta = final
            ? `in ${formatDuration(elapsed)}`
            : `ETA ${rate > 0 ? formatDuration((total - done) / rate) : "?"}`;
        } else {
          bar = `${done} ${unit}`;
          eta = final ? `in ${formatDuration(elapsed)}` : `${formatDuration(elapsed)}`;
        }
        const line =
          `${name}  ${bar}  ${rate.toPrecision(3)} ${unit}/s  ${eta}  ${formatInfo(info)}`.trimEnd();
        if (plain) stream.write(`${line}\n`);
        else stream.write(`\r\x1b[2K${line}${final ? "\n" : ""}`);
      };
      return {
        tick(n = 1, newInfo) {
          done += n;
          if (newInfo) info = { ...info, ...newInfo };
          const now = performance.now();
          if (now - last >= interval) {
            last = now;
            render(false);
          }
        },
        done() {
          if (finished) return;
          finished = true;
          render(true);
        },
      };
    },
  };
}
