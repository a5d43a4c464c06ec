/**
 * MMLU-medical 5-shot (current profile: each subject's 5 dev shots in front of every question) through the
 * real evaluation, on a SmolLM-135M-shaped random Llama (Llama-2 tokenizer), questions/s, against PyTorch
 * scoring the same token requests the harness's way: one full forward of (context + option)[:-1] per option
 * (packages/model/bench/torch_score.py, same run). The tfjs side is what `asScoringModel` does: shared context
 * per question, and the shots' keys and values computed once per subject and reused (the prefix cache).
 *
 *   pnpm --filter @hippocrates/eval bench                 # questions.ts, then this (6 questions per subject)
 *   MMLU_LIMIT=2 MMLU_SUBJECTS=anatomy TORCH=0 tsx bench/mmlu.ts   # short
 * Prints the ratio, the work skipped (token slots through the layers, lm_head rows) and peak memory.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describeBackend, initBackend } from "@hippocrates/backend";
import type { LogLikelihoodRequest, ScoringModel } from "@hippocrates/core";
import {
  createPrefixCache,
  createRandomModel,
  logLikelihood,
  type ScoreStats,
  wasmHeapBytes,
} from "@hippocrates/model";
import { loadTokenizer } from "@hippocrates/tokenizer";
import { SMOLLM_135M } from "../../model/bench/shapes.js";
import { evaluate } from "../src/index.js";
import { MMLU_MEDICAL_SUBJECTS } from "../src/tasks/builtin.js";

const DATA_DIR = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
const TORCH_SCRIPT = fileURLToPath(new URL("../../model/bench/torch_score.py", import.meta.url));
const limit = Number(process.env.MMLU_LIMIT ?? 6);
const subjects = (process.env.MMLU_SUBJECTS ?? MMLU_MEDICAL_SUBJECTS.join(",")).split(",");
const runTorch = process.env.TORCH !== "0";
// PyTorch's per-option cost per question does not depend on which questions came before, so it scores only the
// first TORCH_LIMIT questions of each subject (default 3), the same token requests as the tfjs side's.
const torchLimit = Number(process.env.TORCH_LIMIT ?? Math.min(3, limit));
const threads = Number(process.env.THREADS ?? 2);

const info = await initBackend({ backend: "wasm", threads });
const tokenizer = await loadTokenizer(join(DATA_DIR, "tokenizers/llama2"));
const lm = createRandomModel({ ...SMOLLM_135M }, { seed: 0 });
const E = lm.dims.hidden;
const V = lm.dims.vocab;
const perTokenLayers = 2 * lm.dims.layers * (E * E + 2 * E * 192 + E * E + 3 * E * lm.dims.intermediate);

/** The ScoringModel `asScoringModel` builds, with its counters visible and every request recorded. */
function scoringModel(record: LogLikelihoodRequest[], stats: ScoreStats) {
  const prefixCache = createPrefixCache(lm);
  const model: ScoringModel = {
    name: "smollm-random",
    maxLength: lm.config.max_position_embeddings,
    logLikelihood: (requests, run = {}) => {
      record.push(...requests);
      return logLikelihood(lm, requests, { ...run, prefixCache, stats });
    },
  };
  return { model, prefixCache };
}

const tasks = subjects.map((s) => `mmlu_${s}`);
// Warm-up (kernels, weight packing) on one question of another shape, not counted.
await evaluate({
  model: scoringModel([], { forwards: 0, tokens: 0, prefixes: 0 }).model,
  tokenizer,
  tasks: ["medqa_4options"],
  profile: "current",
  dataDir: DATA_DIR,
  limit: 1,
});

const requests: LogLikelihoodRequest[] = [];
const stats: ScoreStats = { forwards: 0, tokens: 0, prefixes: 0, reusedTokens: 0 };
const { model, prefixCache } = scoringModel(requests, stats);
const load0 = loadavg()[0] as number;
const t0 = performance.now();
const out = await evaluate({
  model,
  tokenizer,
  tasks,
  profile: "current",
  numFewshot: 5,
  dataDir: DATA_DIR,
  limit,
});
const seconds = (performance.now() - t0) / 1000;
const questions = tasks.reduce((n, t) => n + (out.samples[t]?.length ?? 0), 0);
const tfjsRate = questions / seconds;
const heap = wasmHeapBytes();
const rss = process.resourceUsage().maxRSS / 1024;
const load1 = loadavg()[0] as number;

// The harness's work on the same requests: one full forward of (context + option)[:-1] each, full logits.
const oursSlots = stats.tokens + prefixCache.stats.tokensRun;
const torchSlots = requests.reduce((n, r) => n + r.context.length + r.continuation.length - 1, 0);
const oursHead = requests.reduce((n, r) => n + r.continuation.length, 0);
const ctxLens = [...new Set(requests.map((r) => r.context.join(",")))].map((c) => c.split(",").length);

interface TorchResult {
  questions_per_s: number;
  seconds: number;
  peak_rss_mib: number;
  gemm_gflops: number;
  blas: string;
}
let torch: TorchResult | null = null;
let torchNote = "not run (TORCH=0)";
if (runTorch) {
  // Requests grouped by context content (each option's request carries its own copy of the context).
  const byContext = new Map<string, { context: number[]; continuations: number[][] }>();
  for (const r of requests) {
    const key = r.context.join(",");
    const q = byContext.get(key) ?? { context: r.context, continuations: [] };
    q.continuations.push(r.continuation);
    byContext.set(key, q);
  }
  // The first torchLimit questions of each subject (the requests came subject by subject, in order).
  const all = [...byContext.values()];
  const chosen: typeof all = [];
  let k = 0;
  for (const t of tasks) {
    const n = out.samples[t]?.length ?? 0;
    chosen.push(...all.slice(k, k + Math.min(n, torchLimit)));
    k += n;
  }
  const dir = mkdtempSync(join(tmpdir(), "hippo-mmlu-bench-"));
  try {
    const file = join(dir, "questions.json");
    const d = lm.dims;
    writeFileSync(
      file,
      JSON.stringify({
        config: {
          hidden_size: d.hidden,
          intermediate_size: d.intermediate,
          num_hidden_layers: d.layers,
          num_attention_heads: d.heads,
          num_key_value_heads: d.kvHeads,
          vocab_size: d.vocab,
          rms_norm_eps: 1e-5,
          rope_theta: 10000,
          tie_word_embeddings: true,
        },
        questions: chosen,
      }),
    );
    const r = spawnSync("/usr/bin/python3", [TORCH_SCRIPT, file], { encoding: "utf8", timeout: 7_200_000 });
    const last = r.stdout.trim().split("\n").pop() ?? "";
    if (r.status === 0 && last.startsWith("{")) {
      const t = JSON.parse(last) as TorchResult;
      torch = t;
      torchNote = `torch per-option full forward, 2 threads, ${t.blas}, GEMM ${t.gemm_gflops.toFixed(0)} GFLOP/s`;
    } else torchNote = `failed: ${(r.stderr || r.stdout).trim().split("\n").pop()}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const gflops = (slots: number, head: number) => (slots * perTokenLayers + head * 2 * E * V) / 1e9;
console.log(
  `\n### @hippocrates/eval: MMLU-medical 5-shot (current profile), ${questions} questions (${limit} per subject, ${subjects.length} subjects)\n`,
);
console.log(
  `SmolLM-135M-shaped random Llama, Llama-2 tokenizer, BOS; contexts ${Math.min(...ctxLens)}-${Math.max(...ctxLens)} tokens (mean ${(ctxLens.reduce((a, b) => a + b, 0) / ctxLens.length).toFixed(0)}); backend ${describeBackend(info)}; ${cpus()[0]?.model ?? "?"}, ${cpus().length} cores; load average ${load0.toFixed(1)} -> ${load1.toFixed(1)}\n`,
);
console.log(
  "| path | questions/s | seconds | token slots through the layers | lm_head rows | forward GFLOP (est.) | peak MiB |",
);
console.log("|---|---|---|---|---|---|---|");
console.log(
  `| tfjs, shared context + few-shot prefix reuse | ${tfjsRate.toFixed(3)} | ${seconds.toFixed(1)} | ${oursSlots} (${prefixCache.stats.tokensRun} of them the ${prefixCache.stats.entriesCreated} shared prefixes, run once; ${stats.reusedTokens} reused) | ${oursHead} | ${gflops(oursSlots, oursHead).toFixed(0)} | wasm heap ${heap === null ? "-" : (heap / 2 ** 20).toFixed(0)}, RSS ${rss.toFixed(0)} |`,
);
if (torch !== null) {
  console.log(
    `| PyTorch, one forward per option (the harness) | ${torch.questions_per_s.toFixed(3)} | ${torch.seconds.toFixed(1)} | ${torchSlots} | ${torchSlots} | ${gflops(torchSlots, torchSlots).toFixed(0)} | RSS ${torch.peak_rss_mib.toFixed(0)} |`,
  );
  console.log(
    `\nratio tfjs / PyTorch: **${(tfjsRate / torch.questions_per_s).toFixed(2)}x** (target >= 4x); FLOPs skipped: ${(100 * (1 - gflops(oursSlots, oursHead) / gflops(torchSlots, torchSlots))).toFixed(0)}%`,
  );
}
console.log(
  `\n${torchNote}; PyTorch timed on the first ${torchLimit} question(s) of each subject (its per-question cost does not depend on order); token slots and FLOPs are for all ${questions} questions on both sides`,
);
prefixCache.clear();
lm.dispose();
