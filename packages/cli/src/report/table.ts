/** The report in the terminal: our per-stage accuracy beside the paper's per-stage averages, and per task. */
import { PUBLISHED_COLUMNS, PUBLISHED_RESULTS, PUBLISHED_STAGES, PUBLISHED_TASKS } from "@hippocrates/eval";
import type { EvalRow, ReportData } from "./collect.js";

const pct = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? "—" : (100 * v).toFixed(1));

/** A markdown table: the first `textColumns` columns left-aligned (names), the rest right-aligned (numbers). */
function table(header: string[], rows: string[][], textColumns = 1): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: string[]) =>
    `| ${cells.map((x, c) => (c < textColumns ? x.padEnd(widths[c] ?? 0) : x.padStart(widths[c] ?? 0))).join(" | ")} |`;
  return [
    line(header),
    `|${widths.map((w, c) => (c < textColumns ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`,
    ...rows.map(line),
  ].join("\n");
}

/** An eval's row name: its label, and its base model's name when the run has several. */
export const rowName = (e: EvalRow, several: boolean) => (several ? `${e.model} ${e.label}` : e.label);

/** Markdown tables (they read well in a terminal and paste into issues). */
export function formatReportTable(data: ReportData): string {
  const out: string[] = [];
  out.push(
    `Run ${data.name} (${data.status}); ${data.machine.cpu}, ${data.machine.cores} cores, Node ${data.machine.node}`,
  );
  out.push("");
  out.push(
    "Accuracy per stage (%), ours beside the paper's per-stage zero-shot averages (7B models, six benchmarks):",
  );
  if (data.miniature)
    out.push(
      "(The miniature: a small random model trained and tested on an invented knowledge base. Its numbers show\n" +
        "the trend from stage to stage only; they are not comparable with the paper's medical benchmarks.)",
    );
  const several = new Set(data.evals.map((e) => e.model)).size > 1;
  const rows: string[][] = [];
  const seen = new Set<string>();
  for (const e of data.evals) {
    const pub = PUBLISHED_STAGES.find((p) => p.label === e.label);
    rows.push([
      ...(several ? [e.model] : []),
      e.label,
      pct(e.average),
      pub ? pub.llama2.toFixed(1) : "—",
      pub ? pub.mistral.toFixed(1) : "—",
    ]);
    seen.add(e.label);
  }
  for (const p of PUBLISHED_STAGES)
    if (!seen.has(p.label))
      rows.push([...(several ? [""] : []), p.label, "—", p.llama2.toFixed(1), p.mistral.toFixed(1)]);
  out.push(
    table(
      [...(several ? ["model"] : []), "stage", "this run", "Llama-2 7B (paper)", "Mistral 7B (paper)"],
      rows,
      several ? 2 : 1,
    ),
  );

  const tasks = [...new Set(data.evals.flatMap((e) => Object.keys(e.tasks)))];
  if (tasks.length) {
    out.push("");
    out.push("Per task (acc / acc_norm, %):");
    out.push(
      table(
        ["stage", ...tasks],
        data.evals.map((e) => [
          rowName(e, several),
          ...tasks.map((t) => (e.tasks[t] ? `${pct(e.tasks[t]?.acc)} / ${pct(e.tasks[t]?.acc_norm)}` : "—")),
        ]),
      ),
    );
  }
  // The paper's table when the run evaluated any of its benchmarks.
  if (tasks.some((t) => (PUBLISHED_TASKS as readonly string[]).includes(t))) {
    out.push("");
    out.push("Published results (0-shot acc %), with this run's rows:");
    const ours = data.evals.map((e) => [
      `this run ${rowName(e, several)}`,
      ...PUBLISHED_TASKS.map((t) => pct(e.tasks[t]?.acc)),
      pct(e.average),
    ]);
    const published = PUBLISHED_RESULTS.map((r) => [
      r.model,
      ...[...PUBLISHED_TASKS, "avg" as const].map((t) => r.scores[t][0].toFixed(1)),
    ]);
    out.push(
      table(
        ["model", ...PUBLISHED_TASKS.map((t) => PUBLISHED_COLUMNS[t]), PUBLISHED_COLUMNS.avg],
        [...ours, ...published],
      ),
    );
  }
  const timed = data.stages.filter((s) => s.seconds !== null);
  if (timed.length) {
    out.push("");
    out.push(`Stage times: ${timed.map((s) => `${s.id} ${(s.seconds as number).toFixed(1)} s`).join(", ")}`);
  }
  return out.join("\n");
}
