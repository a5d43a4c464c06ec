/**
 * Questions per second of a 0-shot evaluation on a SmolLM-135M-shaped random Llama (30 layers, hidden 576,
 * vocab 49,152; Llama-2 tokenizer), with and without context sharing (the context run once per question and
 * each option scored on its KV cache, versus one full forward per option as lm-evaluation-harness does).
 *
 *   pnpm bench                      # MedQA and PubMedQA, 20 questions each
 *   EVAL_BENCH_LIMIT=5 pnpm bench   # quicker
 *   EVAL_BENCH_BACKEND=native ...   # a tfjs backend name for @hippocrates/backend (default: its auto choice)
 *   EVAL_BENCH_MODEL=tiny ...       # the tiny Llama (hidden 64, 2 layers, vocab 32,000) instead, to check the script
 * Rows print as they are measured.
 */
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BackendName, initBackend } from "@hippocrates/backend";
import { asScoringModel, createRandomModel } from "@hippocrates/model";
import { loadTokenizer } from "@hippocrates/tokenizer";
import * as tf from "@tensorflow/tfjs-core";
import { SMOLLM_135M } from "../../model/bench/shapes.js";
import { evaluate } from "../src/index.js";
import { TINY_LLAMA2_VOCAB } from "../test/localModel.js";

const DATA_DIR = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
const limit = Number(process.env.EVAL_BENCH_LIMIT ?? 20);
const tasks = (process.env.EVAL_BENCH_TASKS ?? "medqa_usmle,pubmedqa").split(",");

const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores`;
const requested = process.env.EVAL_BENCH_BACKEND;
const info = await initBackend(requested ? { backend: requested as BackendName } : {});
const tiny = process.env.EVAL_BENCH_MODEL === "tiny";
const shape = tiny
  ? "tiny random Llama (2 layers, hidden 64, vocab 32000)"
  : "SmolLM-135M-shaped random Llama (30 layers, hidden 576, vocab 49152)";
const tokenizer = await loadTokenizer(join(DATA_DIR, "tokenizers/llama2"));
const lm = createRandomModel(tiny ? { ...TINY_LLAMA2_VOCAB } : { ...SMOLLM_135M }, { seed: 0 });
console.log(`Eval throughput, 0-shot, v0.3 protocol; ${shape}, Llama-2 tokenizer;`);
console.log(
  `one question per model call; backend ${tf.getBackend()} (${info.reason}); machine: ${machine}.\n`,
);
console.log("| task | questions | context sharing | questions/s | seconds | mean context tokens |");
console.log("|---|---|---|---|---|---|");
for (const task of tasks) {
  for (const share of [true, false]) {
    const model = asScoringModel(lm, { name: `bench-random-${share}`, shareContext: share });
    await evaluate({ model, tokenizer, tasks: [task], dataDir: DATA_DIR, limit: 1 }); // warm-up (kernels, tokenizer)
    const t0 = performance.now();
    const out = await evaluate({ model, tokenizer, tasks: [task], dataDir: DATA_DIR, limit });
    const s = (performance.now() - t0) / 1000;
    const n = out.samples[task]?.length ?? 0;
    const ctxTokens =
      (out.samples[task] ?? []).reduce((a, r) => a + (r.context_tokens[0] ?? 0), 0) / Math.max(1, n);
    console.log(
      `| ${task} | ${n} | ${share ? "yes" : "no (harness)"} | ${(n / s).toFixed(3)} | ${s.toFixed(1)} | ${ctxTokens.toFixed(0)} |`,
    );
  }
}
lm.dispose();
