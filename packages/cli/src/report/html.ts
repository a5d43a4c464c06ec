/**
 * The HTML report: one self-contained file (inline CSS, inline SVG charts drawn here, a few lines of inline
 * JS for the sample browser), so it opens offline and can be mailed or archived as is. No network at view
 * time: no CDN, no fonts, no images outside the file.
 */
import { PUBLISHED_COLUMNS, PUBLISHED_STAGES, PUBLISHED_TASKS } from "@hippocrates/eval";
import type { CurveMetric, ModelInfo, ReportData, SampleRow } from "./collect.js";
import { rowName } from "./table.js";

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
/** A metric in a table: integers as integers (`global_step=64`), others to 3 significant digits. */
export const fmt = (v: number) =>
  Number.isInteger(v)
    ? String(v)
    : Math.abs(v) >= 100
      ? v.toFixed(0)
      : Math.abs(v) >= 10
        ? v.toFixed(1)
        : v.toPrecision(3);

/** Every chart has the same drawing width, so text is the same size in all of them at the page's width. */
const W = 560;

export interface Series {
  name: string;
  points: [number, number][];
}

/** A 1, 2 or 5 times a power of ten step that cuts `span` into about `count` parts. */
function niceStep(span: number, count: number): number {
  const raw = span > 0 && Number.isFinite(span) ? span / count : 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const f = raw / power;
  const eps = 1e-9; // 5e-4 / 5 is 1.0000000000000002e-4: still a step of 1e-4
  return (f <= 1 + eps ? 1 : f <= 2 + eps ? 2 : f <= 5 + eps ? 5 : 10) * power;
}

/** Ticks at multiples of a nice step covering [lo, hi]; the axis then runs from the first to the last. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  const step = niceStep(hi - lo, count);
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  // Multiply (not accumulate) so 0.6915 is not printed as 0.6914999999.
  return Array.from({ length: last - first + 1 }, (_, i) => Number(((first + i) * step).toPrecision(12)));
}

/**
 * Labels for evenly spaced ticks, with as many decimals as the step needs (0.6910, 0.6915 ... for DPO's loss
 * near ln 2), or as powers of ten when every tick is below 0.01 (learning rates: 5e-4, 1e-3).
 */
export function tickLabels(ticks: number[]): string[] {
  const step = ticks.length > 1 ? Math.abs((ticks[1] as number) - (ticks[0] as number)) : 1;
  const stepPower = Math.floor(Math.log10(step) + 1e-9);
  const small = Math.max(...ticks.map(Math.abs)) < 0.01;
  return ticks.map((v) => {
    if (v === 0) return "0";
    if (!small) return v.toFixed(Math.max(0, -stepPower));
    const e = Math.floor(Math.log10(Math.abs(v)) + 1e-9);
    return `${Number((v / 10 ** e).toFixed(Math.max(0, e - stepPower)))}e${e}`;
  });
}

export interface LineChartOptions {
  /** A fixed y range (accuracies: [0, 1]); by default the range is fitted to the data. */
  yRange?: [number, number];
  /** The x axis counts optimizer steps: integer ticks only. */
  integerX?: boolean;
  /** `data-metric` of the <svg>, for tests and styling. */
  metric?: string;
}

/** Legend entries laid out left to right, wrapping at the chart's width; returns the SVG and the rows used. */
function legend(
  names: string[],
  x0: number,
  y0: number,
  mark: (color: string, x: number, y: number) => string,
): { svg: string; rows: number } {
  let x = x0;
  let row = 0;
  const parts: string[] = [];
  names.forEach((name, i) => {
    const color = COLORS[i % COLORS.length] as string;
    const width = 22 + 7 * name.length + 18;
    if (x + width > W - 8 && x > x0) {
      x = x0;
      row += 1;
    }
    const y = y0 + row * 18;
    parts.push(`${mark(color, x, y)}<text x="${x + 22}" y="${y + 4}" class="legend">${esc(name)}</text>`);
    x += width;
  });
  return { svg: parts.join(""), rows: row + 1 };
}

/**
 * A line chart: title, legend, axis titles, gridlines at nice ticks, y fitted to the data (5% margin) unless
 * given. Each series is a <polyline class="series"> with its point count in data-points.
 */
export function lineChart(
  title: string,
  series: Series[],
  xLabel: string,
  yLabel: string,
  options: LineChartOptions = {},
): string {
  const shown = series.filter((s) => s.points.length > 0);
  const all = shown.flatMap((s) => s.points);
  if (all.length === 0) return `<p class="empty">${esc(title)}: no data</p>`;
  const lg = legend(
    shown.map((s) => s.name),
    12,
    40,
    (c, x, y) => `<line x1="${x}" x2="${x + 16}" y1="${y}" y2="${y}" stroke="${c}" stroke-width="3"/>`,
  );
  const H = 300 + 18 * (lg.rows - 1);
  const m = { l: 72, r: 20, t: 64 + 18 * (lg.rows - 1), b: 52 };
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  let [xlo, xhi] = [Math.min(...xs), Math.max(...xs)];
  if (xhi === xlo) xhi = xlo + 1;
  let [ylo, yhi] = options.yRange ?? [Math.min(...ys), Math.max(...ys)];
  if (!options.yRange) {
    const pad = yhi > ylo ? 0.05 * (yhi - ylo) : Math.abs(ylo) * 0.05 || 0.5;
    // The margin never crosses zero: a learning rate that decays to 0 gets no negative tick.
    [ylo, yhi] = [
      ylo >= 0 ? Math.max(0, ylo - pad) : ylo - pad,
      yhi <= 0 ? Math.min(0, yhi + pad) : yhi + pad,
    ];
  }
  const yt = options.yRange ? niceTicks(ylo, yhi, 4) : niceTicks(ylo, yhi, 5);
  const ylabels = tickLabels(yt);
  // Room for the longest tick label (about 8 units a character at the tick size) beside the axis title.
  m.l = Math.max(60, 36 + 8 * Math.max(...ylabels.map((l) => l.length)));
  const [y0, y1] = [yt[0] as number, yt.at(-1) as number];
  // Steps are integers: a step of at least 1 between ticks, so a 3-step run has ticks 1, 2, 3, not 1.5.
  const xt = niceTicks(xlo, xhi, 6)
    .filter((t) => !options.integerX || Number.isInteger(t))
    .filter((t) => t >= xlo && t <= xhi);
  const xlabels = options.integerX ? xt.map(String) : tickLabels(xt);
  const sx = (x: number) => m.l + ((x - xlo) / (xhi - xlo)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const f1 = (v: number) => v.toFixed(1);
  const parts = [
    `<svg class="chart line"${options.metric ? ` data-metric="${esc(options.metric)}"` : ""} viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">`,
    `<text x="12" y="20" class="title">${esc(title)}</text>`,
    lg.svg,
    ...yt.map(
      (t, i) =>
        `<line x1="${m.l}" x2="${W - m.r}" y1="${f1(sy(t))}" y2="${f1(sy(t))}" class="grid"/><text x="${m.l - 6}" y="${f1(sy(t) + 4)}" class="tick y" text-anchor="end">${ylabels[i]}</text>`,
    ),
    ...xt.map(
      (t, i) =>
        `<line x1="${f1(sx(t))}" x2="${f1(sx(t))}" y1="${H - m.b}" y2="${H - m.b + 4}" class="axisline"/><text x="${f1(sx(t))}" y="${H - m.b + 18}" class="tick x" text-anchor="middle">${xlabels[i]}</text>`,
    ),
    `<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" class="axisline"/>`,
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" class="axis">${esc(xLabel)}</text>`,
    `<text x="16" y="${(m.t + H - m.b) / 2}" class="axis" transform="rotate(-90 16 ${(m.t + H - m.b) / 2})">${esc(yLabel)}</text>`,
  ];
  shown.forEach((s) => {
    const color = COLORS[series.indexOf(s) % COLORS.length];
    const pts = s.points.map(([x, y]) => `${f1(sx(x))},${f1(sy(y))}`).join(" ");
    parts.push(
      `<polyline class="series" data-series="${esc(s.name)}" data-points="${s.points.length}" points="${pts}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round"/>`,
    );
    // Markers where the points are few enough to tell apart (an eval loss every N steps, a short run).
    if (s.points.length <= 30)
      for (const [x, y] of s.points)
        parts.push(
          `<circle cx="${f1(sx(x))}" cy="${f1(sy(y))}" r="3" fill="${color}"><title>${esc(`${s.name}, step ${x}: ${y}`)}</title></circle>`,
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
  const lg = legend(
    series.map((s) => s.name),
    12,
    0,
    (c, x, y) => `<rect x="${x + 3}" y="${y - 6}" width="12" height="12" fill="${c}"/>`,
  );
  const H = 300 + 18 * (lg.rows - 1);
  const m = { l: 56, r: 12, t: 36, b: 56 + 18 * lg.rows };
  const gw = (W - m.l - m.r) / Math.max(1, categories.length);
  const bw = (gw * 0.8) / Math.max(1, series.length);
  const sy = (y: number) => H - m.b - (y / yMax) * (H - m.t - m.b);
  const parts = [
    `<svg class="chart bars" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">`,
    `<text x="12" y="20" class="title">${esc(title)}</text>`,
    ...[0, 25, 50, 75, 100].map(
      (t) =>
        `<line x1="${m.l}" x2="${W - m.r}" y1="${sy(t)}" y2="${sy(t)}" class="grid"/><text x="${m.l - 6}" y="${sy(t) + 4}" class="tick" text-anchor="end">${t}</text>`,
    ),
    `<text x="16" y="${(m.t + H - m.b) / 2}" class="axis" transform="rotate(-90 16 ${(m.t + H - m.b) / 2})">accuracy (%)</text>`,
  ];
  categories.forEach((c, ci) => {
    const gx = m.l + ci * gw + gw * 0.1;
    parts.push(
      `<text x="${gx + gw * 0.4}" y="${H - m.b + 18}" class="tick" text-anchor="middle">${esc(c)}</text>`,
    );
    series.forEach((s, si) => {
      const v = s.values[ci];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      const y = sy(Math.min(v, yMax));
      parts.push(
        `<rect class="bar" data-series="${esc(s.name)}" data-category="${esc(c)}" data-value="${v.toFixed(2)}" x="${(gx + si * bw).toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(1, bw - 2).toFixed(1)}" height="${(H - m.b - y).toFixed(1)}" fill="${COLORS[si % COLORS.length]}"><title>${esc(`${s.name}, ${c}: ${v.toFixed(1)}`)}</title></rect>`,
      );
    });
  });
  parts.push(`<g transform="translate(0 ${H - m.b + 42})">${lg.svg}</g>`);
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
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#111;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:16px;margin:20px 0 6px}
.meta{color:#555;font-size:13px}.note{color:#555;font-size:13px;margin:4px 0 10px}
.caveat{background:#fff7ed;border:1px solid #fdba74;border-left:5px solid #ea580c;border-radius:6px;padding:10px 14px;margin:10px 0 14px}
.about{background:#f8fafc;border:1px solid #cbd5e1;border-left:5px solid #64748b;border-radius:6px;padding:10px 14px;margin:10px 0 14px}
.caveat p,.about p{margin:4px 0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:16px}
svg.chart{width:100%;height:auto;background:#fafafa;border:1px solid #e5e5e5;border-radius:6px}
svg .title{font-size:15px;font-weight:600}svg .tick{font-size:13px;fill:#333}svg .legend{font-size:13px;fill:#222}
svg .axis{font-size:13px;text-anchor:middle;fill:#222;font-weight:500}svg .grid{stroke:#e2e2e2}svg .axisline{stroke:#888}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f3f4f6}td:first-child,th:first-child{text-align:left}
#samples td,#samples th{text-align:left;font-size:13px}#samples pre{white-space:pre-wrap;margin:0;max-width:480px}
.ok{color:#15803d;font-weight:600}.bad{color:#b91c1c;font-weight:600}.gold{font-weight:700}.lp{color:#666}
.controls{display:flex;flex-wrap:wrap;gap:12px;align-items:center;margin:8px 0}
.pager button{font:inherit;padding:2px 10px}.pager button:disabled{opacity:.4}
`;

// The sample browser: filters by task and stage, and pages through the rows (every sample is in the page's
// JSON; only one page of rows is in the DOM, so a 35,000-sample report stays responsive).
const SCRIPT = `
(function(){
  var data = JSON.parse(document.getElementById("sample-data").textContent);
  var task = document.getElementById("task-filter"), stage = document.getElementById("stage-filter");
  var size = document.getElementById("page-size");
  var all = function(c){return Array.prototype.slice.call(document.querySelectorAll(c));};
  var body = document.querySelector("#samples tbody");
  var page = 0, rows = [];
  function esc(s){return String(s).replace(/[&<>"]/g,function(c){return {"&":"&amp;","<":"&lt;",">":"&gt;","\\"":"&quot;"}[c];});}
  function filter(){
    rows = data.filter(function(s){return (!task.value||s.task===task.value)&&(!stage.value||s.label===stage.value);});
    page = 0; render();
  }
  function render(){
    var n = Number(size.value), pages = Math.max(1, Math.ceil(rows.length / n));
    page = Math.min(Math.max(page, 0), pages - 1);
    var first = page * n, shown = rows.slice(first, first + n);
    body.innerHTML = shown.map(function(s){
      var opts = s.options.map(function(o,i){
        return '<div class="'+(i===s.gold?'gold':'')+'">'+String.fromCharCode(65+i)+'. '+esc(o)+' <span class="lp">('+(s.logprobs[i]===undefined?'?':s.logprobs[i].toFixed(3))+')</span>'+(i===s.pred?' &larr; prediction':'')+'</div>';
      }).join("");
      return '<tr data-task="'+esc(s.task)+'"><td>'+esc(s.label)+'</td><td>'+esc(s.task)+'</td><td>'+esc(s.id)+'</td><td><pre>'+esc(s.context)+'</pre></td><td>'+opts+'</td><td>'+String.fromCharCode(65+s.gold)+'</td><td class="'+(s.pred===s.gold?'ok':'bad')+'">'+(s.pred>=0?String.fromCharCode(65+s.pred):'?')+'</td></tr>';
    }).join("");
    var opts = "";
    for (var i = 0; i < pages; i++) opts += '<option value="'+i+'">'+(i+1)+'</option>';
    var text = rows.length + " sample" + (rows.length === 1 ? "" : "s") +
      (rows.length ? ", showing " + (first + 1) + "\u2013" + (first + shown.length) : "");
    all(".page-select").forEach(function(e){ e.innerHTML = opts; e.value = String(page); });
    all(".page-count").forEach(function(e){ e.textContent = String(pages); });
    all(".page-prev").forEach(function(e){ e.disabled = page === 0; });
    all(".page-next").forEach(function(e){ e.disabled = page >= pages - 1; });
    all(".sample-count").forEach(function(e){ e.textContent = text; });
  }
  task.addEventListener("change", filter); stage.addEventListener("change", filter);
  size.addEventListener("change", function(){ page = 0; render(); });
  all(".page-select").forEach(function(e){ e.addEventListener("change", function(){ page = Number(e.value); render(); }); });
  all(".page-prev").forEach(function(e){ e.addEventListener("click", function(){ page -= 1; render(); }); });
  all(".page-next").forEach(function(e){ e.addEventListener("click", function(){ page += 1; render(); }); });
  filter();
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

/** 361,472 -> "361K"; 6,738,415,616 -> "6.74B" (three significant digits, as model cards write sizes). */
export function paramCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toPrecision(3)}B`;
  if (n >= 1e6) return `${(n / 1e6).toPrecision(3)}M`;
  if (n >= 1e3) return `${(n / 1e3).toPrecision(3)}K`;
  return String(n);
}

/** "llama, 0.36M parameters, hidden 128, 2 layers" from what the report found in the model's folder. */
function modelText(m: ModelInfo): string {
  const facts = [
    m.modelType,
    m.parameters !== undefined ? `${paramCount(m.parameters)} parameters` : undefined,
    m.hiddenSize !== undefined ? `hidden ${m.hiddenSize}` : undefined,
    m.layers !== undefined ? `${m.layers} layers` : undefined,
    m.vocabSize !== undefined ? `vocabulary ${m.vocabSize}` : undefined,
  ].filter((x): x is string => x !== undefined);
  return `${esc(m.name)} = <code>${esc(m.path)}</code>${facts.length ? ` (${esc(facts.join(", "))})` : ""}`;
}

const PAPER_TASKS = PUBLISHED_TASKS.map((t) => PUBLISHED_COLUMNS[t]).join(", ");

/**
 * What the accuracy numbers are, above them: the miniature's are a demonstration on invented facts (shown
 * beside the paper's 7B numbers only for the trend from stage to stage); any other run names its model and
 * says what the paper's columns average, so the two are compared only where tasks and protocol match.
 */
function aboutNumbers(data: ReportData, tasks: string[]): string {
  const paper = `The paper's columns are its 7B models' zero-shot accuracy averaged over six medical benchmarks (${esc(PAPER_TASKS)}; lm-evaluation-harness v0.3 protocol).`;
  if (data.miniature) {
    const model = data.models[0];
    const size =
      model?.parameters !== undefined
        ? `${paramCount(model.parameters)}-parameter random ${esc(model.modelType ?? "model")}${model.hiddenSize !== undefined && model.layers !== undefined ? ` (hidden ${model.hiddenSize}, ${model.layers} layers)` : ""}`
        : "small random model";
    const kb =
      data.miniature.diseases !== undefined
        ? `an invented knowledge base (${data.miniature.diseases} fictional diseases with their drugs, findings, organs and pathogens)`
        : "an invented knowledge base (fictional diseases, drugs and findings)";
    const questions = new Set(data.evals.flatMap((e) => Object.values(e.tasks).map((t) => t.n)));
    const n = questions.size === 1 ? [...questions][0] : undefined;
    return `<div class="caveat" id="caveat"><p><strong>This is the miniature, a demonstration: not a medical result.</strong> Its model is a ${size}, trained on ${kb} and tested on ${n !== undefined ? `${n} ` : ""}held-out questions about those invented facts. No model can know them beforehand, so "base" is at chance (25% with four options) and every point above it was learnt in this run.</p><p>Its accuracies are not comparable with the paper's: they are shown beside them for the per-stage trend only (what CPT, SFT and DPO each add). ${paper}</p></div>`;
  }
  const models = data.models.length
    ? `<p>Model${data.models.length > 1 ? "s" : ""}: ${data.models.map(modelText).join("; ")}.</p>`
    : "";
  const same = tasks.length > 0 && tasks.every((t) => (PUBLISHED_TASKS as readonly string[]).includes(t));
  const compare = same
    ? `This run's average is over the tasks it evaluated (${esc(tasks.join(", "))}): compare it with the paper's only where it evaluated all six with the same protocol and shots.`
    : `This run evaluated ${esc(tasks.join(", ") || "no tasks")}: its average is not over the paper's benchmarks, so the paper's columns are context, not a comparison.`;
  return `<div class="about" id="caveat">${models}<p>${paper} ${compare}</p></div>`;
}

/** The charts of one training stage: loss, learning rate, and DPO's rewards, margins and accuracies. */
function stageCharts(curve: ReportData["curves"][number]): string {
  const p = curve.points;
  const pick = (key: CurveMetric): [number, number][] =>
    p.filter((x) => x[key] !== undefined).map((x) => [x.step, x[key] as number]);
  const step = "optimizer step";
  const charts = [
    lineChart(
      `${curve.stage}: loss`,
      [
        { name: "train loss", points: pick("loss") },
        { name: "eval loss", points: pick("eval_loss") },
      ],
      step,
      curve.kind === "dpo" ? "DPO loss" : "loss (nats/token)",
      { integerX: true, metric: "loss" },
    ),
    lineChart(
      `${curve.stage}: learning rate`,
      [{ name: "learning rate", points: pick("learning_rate") }],
      step,
      "learning rate",
      { integerX: true, metric: "learning_rate" },
    ),
  ];
  if (pick("rewards/chosen").length > 0 || pick("rewards/rejected").length > 0) {
    charts.push(
      lineChart(
        `${curve.stage}: rewards (chosen vs rejected)`,
        [
          { name: "chosen", points: pick("rewards/chosen") },
          { name: "rejected", points: pick("rewards/rejected") },
        ],
        step,
        "β · log(π / π_ref)",
        { integerX: true, metric: "rewards" },
      ),
      lineChart(
        `${curve.stage}: reward margin (chosen − rejected)`,
        [{ name: "margin", points: pick("rewards/margins") }],
        step,
        "margin",
        { integerX: true, metric: "rewards/margins" },
      ),
      lineChart(
        `${curve.stage}: reward accuracy (chosen > rejected)`,
        [{ name: "accuracy", points: pick("rewards/accuracies") }],
        step,
        "fraction of pairs",
        { integerX: true, metric: "rewards/accuracies", yRange: [0, 1] },
      ),
    );
  }
  const last = p.at(-1)?.step;
  return `<section class="stage-curves" data-stage="${esc(curve.stage)}" data-kind="${esc(curve.kind)}"><h3>${esc(curve.stage)} <span class="note">(${esc(curve.kind)}${last !== undefined ? `, ${last} optimizer steps` : ""})</span></h3><div class="charts">${charts.join("")}</div></section>`;
}

/** Previous / page / next and the count; one above the sample table and one below it (ids on the top one). */
const pager = (where: "top" | "bottom") => {
  const id = (name: string) => (where === "top" ? ` id="${name}"` : "");
  return `<div class="controls pager" data-pager="${where}"><button type="button" class="page-prev"${id("page-prev")}>&lsaquo; previous</button><label>page <select class="page-select"${id("page")}></select> of <span class="page-count"${id("page-count")}></span></label><button type="button" class="page-next"${id("page-next")}>next &rsaquo;</button><span class="sample-count"${id("sample-count")}></span></div>`;
};

export function renderHtmlReport(data: ReportData): string {
  const pct = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? null : 100 * v);
  const trainingCharts = data.curves
    .filter((c) => c.points.length > 0)
    .map(stageCharts)
    .join("");
  const several = new Set(data.evals.map((e) => e.model)).size > 1;
  const labels = data.evals.map((e) => rowName(e, several));
  const stageLabels = data.evals.map((e) => e.label);
  const thisRun = data.miniature ? "this run (miniature, invented facts)" : "this run";
  const stageChart = barChart("Average accuracy per stage (%)", labels, [
    { name: thisRun, values: data.evals.map((e) => pct(e.average)) },
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
  const capped =
    data.samplesTotal > samples.length
      ? `<p class="note" id="samples-capped">The report holds ${samples.length} of the run's ${data.samplesTotal} logged samples (in stage order); <code>hippo report &lt;run-dir&gt; --max-samples ${data.samplesTotal}</code> writes them all.</p>`
      : "";
  const opt = (v: string) => `<option value="${esc(v)}">${esc(v)}</option>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Hippocrates.ts report: ${esc(data.name)}</title>
<style>${CSS}</style></head>
<body>
<h1>Hippocrates.ts run report: ${esc(data.name)}</h1>
<div class="meta">status ${esc(data.status)} · started ${esc(data.createdAt)} · ${esc(data.machine.cpu)} (${data.machine.cores} cores) · Node ${esc(data.machine.node)} · backend ${esc(backendText(data.backend))}</div>
<div class="meta" id="models">${data.models.length ? `base model${data.models.length > 1 ? "s" : ""}: ${data.models.map(modelText).join("; ")}` : ""}</div>
${sourcesHtml}
<h2>Accuracy per stage</h2>
${aboutNumbers(data, tasks)}
<table id="accuracy"><thead><tr><th>stage</th><th>${esc(thisRun)}: average</th>${tasks.map((t) => `<th>${esc(t)}</th>`).join("")}<th>Llama-2 7B (paper)</th><th>Mistral 7B (paper)</th></tr></thead><tbody>${accRows}</tbody></table>
<div class="charts" id="accuracy-charts">${stageChart}${taskChart}</div>
<h2>Training</h2>
<p class="note">Per optimizer step, from each training stage's <code>metrics.jsonl</code> (the entries of <code>log_history</code> in its <code>trainer_state.json</code>, under TRL's names). The y axes are fitted to each curve: read the tick labels, not the slope alone.</p>
<div id="training-charts">${trainingCharts || '<p class="empty">no training stages</p>'}</div>
<h2>Stages</h2>
<table id="stages"><thead><tr><th>stage</th><th>kind</th><th>status</th><th>seconds</th><th>metrics</th></tr></thead><tbody>${stageRows}</tbody></table>
<section id="samples-section">
<h2>Samples</h2>
${capped}
<div class="controls"><label>task <select id="task-filter"><option value="">all tasks</option>${[...new Set(samples.map((s) => s.task))].map(opt).join("")}</select></label>
<label>stage <select id="stage-filter"><option value="">all stages</option>${[...new Set(samples.map((s) => s.label))].map(opt).join("")}</select></label>
<label>rows per page <select id="page-size"><option>25</option><option selected>50</option><option>100</option><option>500</option></select></label></div>
${pager("top")}
<table id="samples"><thead><tr><th>stage</th><th>task</th><th>id</th><th>prompt</th><th>options (log-likelihood)</th><th>gold</th><th>pred</th></tr></thead><tbody></tbody></table>
${pager("bottom")}
</section>
<script type="application/json" id="sample-data">${scriptJson(samples)}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
