/**
 * The HTML report: one self-contained file (inline CSS, inline SVG charts drawn here, a few lines of inline
 * JS for the sample browser), so it opens offline and can be mailed or archived as is. No network at view
 * time: no CDN, no fonts, no images outside the file.
 */
import { PUBLISHED_STAGES } from "@hippocrates/eval";
import type { ReportData, SampleRow } from "./collect.js";
import { rowName } from "./table.js";

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
const fmt = (v: number) =>
  Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toPrecision(3);

interface Series {
  name: string;
  points: [number, number][];
}

/** A line chart; each series is a <polyline class="series"> with its point count in data-points. */
export function lineChart(title: string, series: Series[], xLabel: string, yLabel: string): string {
  const W = 560;
  const H = 260;
  const m = { l: 56, r: 12, t: 28, b: 40 };
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return `<p class="empty">${esc(title)}: no data</p>`;
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const [x0, x1] = [
    Math.min(...xs),
    Math.max(...xs) === Math.min(...xs) ? Math.min(...xs) + 1 : Math.max(...xs),
  ];
  const [y0, y1] = [Math.min(0, ...ys), Math.max(...ys) === Math.min(0, ...ys) ? 1 : Math.max(...ys)];
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => y0 + f * (y1 - y0));
  const parts = [
    `<svg class="chart line" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">`,
    `<text x="${W / 2}" y="16" class="title">${esc(title)}</text>`,
    ...ticks.map(
      (t) =>
        `<line x1="${m.l}" x2="${W - m.r}" y1="${sy(t)}" y2="${sy(t)}" class="grid"/><text x="${m.l - 6}" y="${sy(t) + 4}" class="tick" text-anchor="end">${fmt(t)}</text>`,
    ),
    `<text x="${m.l}" y="${H - 22}" class="tick">${fmt(x0)}</text><text x="${W - m.r}" y="${H - 22}" class="tick" text-anchor="end">${fmt(x1)}</text>`,
    `<text x="${W / 2}" y="${H - 6}" class="axis">${esc(xLabel)}</text>`,
    `<text x="14" y="${H / 2}" class="axis" transform="rotate(-90 14 ${H / 2})">${esc(yLabel)}</text>`,
  ];
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
    parts.push(
      `<polyline class="series" data-series="${esc(s.name)}" data-points="${s.points.length}" points="${pts}" fill="none" stroke="${color}" stroke-width="2"/>`,
    );
    if (s.points.length === 1) {
      const [x, y] = s.points[0] as [number, number];
      parts.push(`<circle cx="${sx(x)}" cy="${sy(y)}" r="3" fill="${color}"/>`);
    }
    parts.push(
      `<text x="${W - m.r - 4}" y="${m.t + 14 * (i + 1)}" class="legend" text-anchor="end" fill="${color}">${esc(s.name)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("");
}

/** Grouped bars: one group per category, one bar per series; each bar is a <rect class="bar"> with data-value. */
export function barChart(
  title: string,
  categories: string[],
  series: { name: string; values: (number | null)[] }[],
  yMax = 100,
): string {
  const W = 640;
  const H = 280;
  const m = { l: 44, r: 12, t: 28, b: 56 };
  const gw = (W - m.l - m.r) / Math.max(1, categories.length);
  const bw = (gw * 0.8) / Math.max(1, series.length);
  const sy = (y: number) => H - m.b - (y / yMax) * (H - m.t - m.b);
  const parts = [
    `<svg class="chart bars" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">`,
    `<text x="${W / 2}" y="16" class="title">${esc(title)}</text>`,
    ...[0, 25, 50, 75, 100].map(
      (t) =>
        `<line x1="${m.l}" x2="${W - m.r}" y1="${sy(t)}" y2="${sy(t)}" class="grid"/><text x="${m.l - 6}" y="${sy(t) + 4}" class="tick" text-anchor="end">${t}</text>`,
    ),
  ];
  categories.forEach((c, ci) => {
    const gx = m.l + ci * gw + gw * 0.1;
    parts.push(
      `<text x="${gx + gw * 0.4}" y="${H - m.b + 16}" class="tick" text-anchor="middle">${esc(c)}</text>`,
    );
    series.forEach((s, si) => {
      const v = s.values[ci];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      const y = sy(Math.min(v, yMax));
      parts.push(
        `<rect class="bar" data-series="${esc(s.name)}" data-category="${esc(c)}" data-value="${v.toFixed(2)}" x="${(gx + si * bw).toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(H - m.b - y).toFixed(1)}" fill="${COLORS[si % COLORS.length]}"><title>${esc(`${s.name}, ${c}: ${v.toFixed(1)}`)}</title></rect>`,
      );
    });
  });
  series.forEach((s, si) => {
    parts.push(
      `<rect x="${m.l + si * 150}" y="${H - 22}" width="10" height="10" fill="${COLORS[si % COLORS.length]}"/><text x="${m.l + si * 150 + 14}" y="${H - 13}" class="legend">${esc(s.name)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("");
}

/** JSON inside <script>: escape "<" so no string can close the element. */
const scriptJson = (v: unknown) =>
  JSON.stringify(v)
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#111;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:12px}.charts{display:flex;flex-wrap:wrap;gap:16px}
svg.chart{width:100%;max-width:640px;height:auto;background:#fafafa;border:1px solid #e5e5e5;border-radius:6px}
svg .title{font-size:13px;font-weight:600;text-anchor:middle}svg .tick,svg .legend{font-size:10px;fill:#444}
svg .axis{font-size:11px;text-anchor:middle;fill:#333}svg .grid{stroke:#e5e5e5}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f3f4f6}td:first-child,th:first-child{text-align:left}
#samples td,#samples th{text-align:left;font-size:12px}#samples pre{white-space:pre-wrap;margin:0;max-width:480px}
.ok{color:#15803d;font-weight:600}.bad{color:#b91c1c;font-weight:600}.gold{font-weight:700}
.controls{display:flex;gap:12px;align-items:center;margin:8px 0}
`;

const SCRIPT = `
(function(){
  var data = JSON.parse(document.getElementById("sample-data").textContent);
  var task = document.getElementById("task-filter"), stage = document.getElementById("stage-filter");
  var body = document.querySelector("#samples tbody"), count = document.getElementById("sample-count");
  function esc(s){return String(s).replace(/[&<>"]/g,function(c){return {"&":"&amp;","<":"&lt;",">":"&gt;","\\"":"&quot;"}[c];});}
  function render(){
    var rows = data.filter(function(s){return (!task.value||s.task===task.value)&&(!stage.value||s.label===stage.value);});
    var shown = rows.slice(0, 500);
    body.innerHTML = shown.map(function(s){
      var opts = s.options.map(function(o,i){
        return '<div class="'+(i===s.gold?'gold':'')+'">'+String.fromCharCode(65+i)+'. '+esc(o)+' <span class="lp">('+(s.logprobs[i]===undefined?'?':s.logprobs[i].toFixed(3))+')</span>'+(i===s.pred?' &larr; prediction':'')+'</div>';
      }).join("");
      return '<tr data-task="'+esc(s.task)+'"><td>'+esc(s.label)+'</td><td>'+esc(s.task)+'</td><td>'+esc(s.id)+'</td><td><pre>'+esc(s.context)+'</pre></td><td>'+opts+'</td><td>'+String.fromCharCode(65+s.gold)+'</td><td class="'+(s.pred===s.gold?'ok':'bad')+'">'+(s.pred>=0?String.fromCharCode(65+s.pred):'?')+'</td></tr>';
    }).join("");
    count.textContent = rows.length + " samples" + (rows.length > shown.length ? " (first " + shown.length + " shown)" : "");
  }
  task.addEventListener("change", render); stage.addEventListener("change", render); render();
})();
`;

/** "wasm, 2 threads, SIMD (@tensorflow/tfjs-backend-wasm 4.22.0)" from the manifest's backend record. */
function backendText(b: unknown): string {
  if (b === null || typeof b !== "object") return String(b);
  const r = b as Record<string, unknown>;
  if (typeof r.name !== "string") return JSON.stringify(b);
  const parts = [
    r.name,
    typeof r.threads === "number" ? `${r.threads} thread${r.threads === 1 ? "" : "s"}` : "",
    r.simd === true ? "SIMD" : "",
  ].filter(Boolean);
  return `${parts.join(", ")}${typeof r.package === "string" ? ` (${r.package} ${String(r.version ?? "")})` : ""}`;
}

export function renderHtmlReport(data: ReportData): string {
  const pct = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? null : 100 * v);
  const lossCharts = data.curves
    .filter((c) => c.points.length > 0)
    .map((c) => {
      const series: Series[] = [
        {
          name: "train loss",
          points: c.points.filter((p) => p.loss !== undefined).map((p) => [p.step, p.loss as number]),
        },
      ];
      const ev = c.points
        .filter((p) => p.eval_loss !== undefined)
        .map((p) => [p.step, p.eval_loss as number] as [number, number]);
      if (ev.length) series.push({ name: "eval loss", points: ev });
      return `<div data-stage="${esc(c.stage)}">${lineChart(`${c.stage}: loss`, series, "optimizer step", "loss")}</div>`;
    })
    .join("");
  const several = new Set(data.evals.map((e) => e.model)).size > 1;
  const labels = data.evals.map((e) => rowName(e, several));
  const stageLabels = data.evals.map((e) => e.label);
  const stageChart = barChart("Average accuracy per stage (%)", labels, [
    { name: "this run", values: data.evals.map((e) => pct(e.average)) },
    {
      name: "Llama-2 7B (paper)",
      values: stageLabels.map((l) => PUBLISHED_STAGES.find((p) => p.label === l)?.llama2 ?? null),
    },
    {
      name: "Mistral 7B (paper)",
      values: stageLabels.map((l) => PUBLISHED_STAGES.find((p) => p.label === l)?.mistral ?? null),
    },
  ]);
  const tasks = [...new Set(data.evals.flatMap((e) => Object.keys(e.tasks)))];
  const taskChart = barChart(
    "Accuracy per task and stage (%)",
    tasks,
    data.evals.map((e) => ({ name: rowName(e, several), values: tasks.map((t) => pct(e.tasks[t]?.acc)) })),
  );
  const stageRows = data.stages
    .map(
      (s) =>
        `<tr><td>${esc(s.id)}</td><td>${esc(s.kind)}</td><td>${esc(s.status)}</td><td>${s.seconds === null ? "—" : s.seconds.toFixed(1)}</td><td>${esc(
          Object.entries(s.metrics)
            .slice(0, 8)
            .map(([k, v]) => `${k}=${fmt(v)}`)
            .join(" "),
        )}</td></tr>`,
    )
    .join("");
  const accRows = data.evals
    .map((e) => {
      const pub = PUBLISHED_STAGES.find((p) => p.label === e.label);
      return `<tr><td>${esc(rowName(e, several))}</td><td>${pct(e.average)?.toFixed(1) ?? "—"}</td>${tasks.map((t) => `<td>${pct(e.tasks[t]?.acc)?.toFixed(1) ?? "—"}${e.tasks[t]?.stderr !== undefined ? ` ± ${(100 * (e.tasks[t]?.stderr as number)).toFixed(1)}` : ""}</td>`).join("")}<td>${pub?.llama2.toFixed(1) ?? "—"}</td><td>${pub?.mistral.toFixed(1) ?? "—"}</td></tr>`;
    })
    .join("");
  // One line per model, tokenizer or dataset read from the Hub (the same dataset read by several eval stages once).
  const sourceLines = new Map<string, string[]>();
  for (const x of data.sources) {
    const what = `${x.type === "dataset" ? "dataset" : x.role.split(" ")[0]} ${x.repo}${x.config && x.config !== "default" ? ` (${x.config})` : ""} @ ${x.revision}${x.commit !== x.revision ? ` = ${x.commit}` : ""}`;
    const roles = sourceLines.get(what) ?? [];
    const role =
      x.type === "dataset" ? x.role.replace(/^dataset /, "") : x.role.split(" ").slice(1).join(" ");
    if (role && !roles.includes(role)) roles.push(role);
    sourceLines.set(what, roles);
  }
  const sourcesHtml = sourceLines.size
    ? `<ul class="meta" id="sources">${[...sourceLines].map(([what, roles]) => `<li>${esc(what)}${roles.length ? ` <span class="empty">(${esc(roles.join(", "))})</span>` : ""}</li>`).join("")}</ul>`
    : "";
  const samples: SampleRow[] = data.samples;
  const opt = (v: string) => `<option value="${esc(v)}">${esc(v)}</option>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Hippocrates.ts report: ${esc(data.name)}</title>
<style>${CSS}</style></head>
<body>
<h1>Hippocrates.ts run report: ${esc(data.name)}</h1>
<div class="meta">status ${esc(data.status)} · started ${esc(data.createdAt)} · ${esc(data.machine.cpu)} (${data.machine.cores} cores) · Node ${esc(data.machine.node)} · backend ${esc(backendText(data.backend))}</div>
${sourcesHtml}
<h2>Accuracy per stage</h2>
<table id="accuracy"><thead><tr><th>stage</th><th>average</th>${tasks.map((t) => `<th>${esc(t)}</th>`).join("")}<th>Llama-2 7B (paper)</th><th>Mistral 7B (paper)</th></tr></thead><tbody>${accRows}</tbody></table>
<div class="charts" id="accuracy-charts">${stageChart}${taskChart}</div>
<h2>Training loss</h2>
<div class="charts" id="loss-charts">${lossCharts || '<p class="empty">no training stages</p>'}</div>
<h2>Stages</h2>
<table id="stages"><thead><tr><th>stage</th><th>kind</th><th>status</th><th>seconds</th><th>metrics</th></tr></thead><tbody>${stageRows}</tbody></table>
<h2>Samples</h2>
<div class="controls"><label>task <select id="task-filter"><option value="">all tasks</option>${[...new Set(samples.map((s) => s.task))].map(opt).join("")}</select></label>
<label>stage <select id="stage-filter"><option value="">all stages</option>${[...new Set(samples.map((s) => s.label))].map(opt).join("")}</select></label>
<span id="sample-count"></span></div>
<table id="samples"><thead><tr><th>stage</th><th>task</th><th>id</th><th>prompt</th><th>options (log-likelihood)</th><th>gold</th><th>pred</th></tr></thead><tbody></tbody></table>
<script type="application/json" id="sample-data">${scriptJson(samples)}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
