/**
 * A markdown table of our rows beside the published ones (0-shot or 5-shot): one row per run, metric acc
 * (or acc_norm) in %, "—" where a task was not run. The average is over the six columns, and only when all
 * six were run (the paper's avg is the plain mean of its six columns).
 */
import { metricValue, type ResultsJson } from "./output.js";
import { PUBLISHED_COLUMNS, PUBLISHED_RESULTS, PUBLISHED_SOURCE, PUBLISHED_TASKS } from "./published.js";

export interface ReportRow {
  label: string;
  results: ResultsJson;
}

export function formatReport(
  rows: readonly ReportRow[],
  opts: { shots: 0 | 5; metric?: "acc" | "acc_norm"; published?: boolean } = { shots: 0 },
): string {
  const metric = opts.metric ?? "acc";
  const idx = opts.shots === 0 ? 0 : 1;
  const cols = [...PUBLISHED_TASKS, "avg"] as const;
  const head = `| model (${opts.shots}-shot, ${metric} %) | ${cols.map((c) => PUBLISHED_COLUMNS[c]).join(" | ")} |`;
  const sep = `|---|${cols.map(() => "---").join("|")}|`;
  const fmt = (v: number | null | undefined) =>
    typeof v === "number" && Number.isFinite(v) ? v.toFixed(1) : "—";
  const lines = [head, sep];
  for (const r of rows) {
    const vals = PUBLISHED_TASKS.map((t) => {
      const m = metricValue(r.results, t, metric) ?? metricValue(r.results, t, "acc");
      return m === null ? null : m * 100;
    });
    const avg = vals.every((v) => v !== null)
      ? (vals as number[]).reduce((a, b) => a + b, 0) / vals.length
      : null;
    lines.push(`| ${r.label} (ours) | ${[...vals, avg].map(fmt).join(" | ")} |`);
  }
  if (opts.published !== false) {
    for (const p of PUBLISHED_RESULTS)
      lines.push(`| ${p.model} (published) | ${cols.map((c) => fmt(p.scores[c][idx])).join(" | ")} |`);
  }
  return `${lines.join("\n")}\n\nPublished rows: ${PUBLISHED_SOURCE}.\n`;
}
