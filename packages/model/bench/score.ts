/**
 * Multiple-choice scoring throughput: 0-shot MedQA (US, 4 options) prompts, the spec's format
 * `Question: {q}\n(A) {a} (B) {b} (C) {c} (D) {d}\nAnswer:` with continuations " " + option text, tokenized
 * with the Llama-2 tokenizer (no BOS, as the v0.3 harness). Random-weight models (the numbers measure speed,
 * not accuracy): (a) the tiny Llama's shape with a 32,000 vocabulary, (b) the SmolLM-135M shape.
 *
 * Each model is timed with context sharing (each question's context once, its options on the KV cache) and
 * naive (one full forward per option, as lm-evaluation-harness). bench/torch_score.py scores the same token
 * ids in PyTorch, one full forward per option, and the ratio is printed.
 *
 *   pnpm --filter @hippocrates/model bench:score [-- --questions 20 --models tiny,smollm --batch 8
 *     --no-torch --no-naive --layers 6 --threads 1]
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { backendInfo, describeBackend, initBackend } from "@hippocrates/backend";
import type { LogLikelihoodRequest } from "@hippocrates/core";
// A dev dependency only: the model itself needs no tokenizer.
import { loadTokenizer } from "@hippocrates/tokenizer";
import * as tf from "@tensorflow/tfjs-core";
import { createRandomModel } from "../src/io.js";
import { logLikelihood, type ScoreStats } from "../src/score.js";
import { SMOLLM_135M } from "./shapes.js";

const SHARED = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
const MEDQA = `${SHARED}benchmarks/medqa/medqa_us_4options_test.jsonl`;
const TOKENIZER = `${SHARED}tokenizers/llama2`;
const TORCH_SCRIPT = fileURLToPath(new URL("./torch_score.py", import.meta.url));

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}
const N = Number(arg("questions", "20"));
const MODELS = arg("models", "tiny,smollm").split(",");
const BATCH = Number(arg("batch", "8"));
const RUN_TORCH = !process.argv.includes("--no-torch");
const NAIVE = !process.argv.includes("--no-naive");
/** Fewer layers for a quick look (the default is each shape's own). */
const LAYERS = process.argv.includes("--layers") ? Number(arg("layers", "0")) : undefined;

const base = {
  model_type: "llama",
  hidden_act: "silu",
  max_position_embeddings: 2048, // RoPE has no learned positions; 2048 keeps MedQA prompts untruncated
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
};
const SHAPES: Record<string, Record<string, unknown>> = {
  // tiny-llama-hf's shape (hidden 64, 2 layers, 4 heads, 2 KV heads), Llama-2's vocabulary
  tiny: {
    ...base,
    hidden_size: 64,
    intermediate_size: 176,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 32000,
    tie_word_embeddings: false,
  },
  smollm: SMOLLM_135M,
};

interface Question {
  context: number[];
  continuations: number[][];
}

async function medqaQuestions(n: number): Promise<Question[]> {
  const tok = await loadTokenizer(TOKENIZER);
  const lines = readFileSync(MEDQA, "utf8").split("\n").filter(Boolean).slice(0, n);
  const out: Question[] = [];
  for (const line of lines) {
    const doc = JSON.parse(line) as { question: string; options: Record<string, string> };
    const letters = Object.keys(doc.options);
    const prompt = `Question: ${doc.question}\n${letters.map((l) => `(${l}) ${doc.options[l]}`).join(" ")}\nAnswer:`;
    const q: Question = { context: [], continuations: [] };
    for (const l of letters) {
      const pair = await tok.encodePair(prompt, ` ${doc.options[l]}`, { addSpecialTokens: false });
      q.context = pair.context;
      q.continuations.push(pair.continuation);
    }
    out.push(q);
  }
  return out;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const rssMiB = () => process.resourceUsage().maxRSS / 1024;

async function main() {
  const threads = process.argv.includes("--threads") ? Number(arg("threads", "0")) : undefined;
  await initBackend({ backend: "wasm", ...(threads ? { threads } : {}) });
  const info = backendInfo();
  const questions = await medqaQuestions(N);
  const requests: LogLikelihoodRequest[] = questions.flatMap((q) =>
    q.continuations.map((c) => ({ context: q.context, continuation: c })),
  );
  const ctxLens = questions.map((q) => q.context.length);
  const contLens = questions.flatMap((q) => q.continuations.map((c) => c.length));
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  console.log(`## Multiple-choice scoring (0-shot MedQA, ${N} questions x 4 options)\n`);
  console.log(`machine: ${cpu}, ${os.cpus().length} cores, Node ${process.version}`);
  console.log(`backend: ${info ? describeBackend(info) : tf.getBackend()}`);
  console.log(
    `context tokens: mean ${mean(ctxLens).toFixed(0)}, min ${Math.min(...ctxLens)}, max ${Math.max(...ctxLens)}; ` +
      `continuation tokens: mean ${mean(contLens).toFixed(1)}, max ${Math.max(...contLens)} (Llama-2 tokenizer, no BOS)`,
  );
  console.log(
    `shared: batch = up to ${BATCH} continuation rows per forward; naive: batch 1, one forward per option\n`,
  );

  const tmp = mkdtempSync(join(os.tmpdir(), "hippo-score-bench-"));
  const rows: string[] = [];
  const row = (r: string) => {
    rows.push(r);
    console.error(r); // as it comes, in case a long run is cut short
  };
  try {
    for (const name of MODELS) {
      const shape = SHAPES[name];
      if (shape === undefined) throw new Error(`unknown model ${name}`);
      const config = LAYERS ? { ...shape, num_hidden_layers: LAYERS } : shape;
      const model = createRandomModel(config, { seed: 1 });
      try {
        // Warm-up (kernel setup, weight transposes): one question.
        await logLikelihood(model, requests.slice(0, 4), { batchSize: BATCH });
        const measured: Record<string, number> = {};
        let sharedSlots = 0;
        let sharedResults: { logprob: number }[] = [];
        for (const mode of NAIVE ? (["shared", "naive"] as const) : (["shared"] as const)) {
          const stats: ScoreStats = { forwards: 0, tokens: 0, prefixes: 0 };
          const t0 = performance.now();
          const res = await logLikelihood(model, requests, {
            ...(mode === "naive" ? { naive: true } : { batchSize: BATCH }),
            stats,
          });
          const sec = (performance.now() - t0) / 1000;
          if (mode === "shared") {
            sharedResults = res;
            sharedSlots = stats.tokens;
          } else {
            const diff = Math.max(
              ...res.map((r, i) => Math.abs(r.logprob - (sharedResults[i]?.logprob ?? 0))),
            );
            console.log(`${name}: max |shared - naive| summed logprob = ${diff.toExponential(2)}`);
          }
          measured[mode] = N / sec;
          row(
            `| ${name} | tfjs ${mode} | ${mode === "naive" ? 1 : BATCH} | ${stats.forwards} | ${stats.tokens} | ${sec.toFixed(1)} | ${(N / sec).toFixed(3)} | ${rssMiB().toFixed(0)} |`,
          );
        }
        if (RUN_TORCH) {
          const file = join(tmp, `${name}.json`);
          writeFileSync(file, JSON.stringify({ config, questions }));
          const r = spawnSync("/usr/bin/python3", [TORCH_SCRIPT, file], { encoding: "utf8" });
          const last = r.stdout.trim().split("\n").pop() ?? "";
          if (r.status !== 0 || !last.startsWith("{")) {
            row(
              `| ${name} | torch skipped: ${(r.stderr || r.stdout).trim().split("\n").pop()} | | | | | | |`,
            );
          } else {
            const t = JSON.parse(last) as {
              questions_per_s: number;
              seconds: number;
              forwards: number;
              tokens: number;
              peak_rss_mib: number;
              blas: string;
              gemm_gflops: number;
            };
            row(
              `| ${name} | torch per-option full forward (${t.blas}, GEMM ${t.gemm_gflops.toFixed(0)} GFLOP/s, 2 threads) | 1 | ${t.forwards} | ${t.tokens} | ${t.seconds.toFixed(1)} | ${t.questions_per_s.toFixed(3)} | ${t.peak_rss_mib.toFixed(0)} |`,
            );
            row(
              `| ${name} | **ratio shared / torch** | | | | | **${((measured.shared as number) / t.questions_per_s).toFixed(2)}x** | |`,
            );
            // Work: token slots through the layers and rows through the lm_head, ours vs the per-option way.
            const E = Number(config.hidden_size);
            const V = Number(config.vocab_size);
            const layers = Number(config.num_hidden_layers);
            const kv = (E / Number(config.num_attention_heads)) * Number(config.num_key_value_heads);
            const perToken = 2 * layers * (2 * E * E + 2 * E * kv + 3 * E * Number(config.intermediate_size));
            const headRows = contLens.reduce((a, b) => a + b, 0);
            const ours = sharedSlots * perToken + headRows * 2 * E * V;
            const theirs = t.tokens * (perToken + 2 * E * V);
            console.log(
              `${name}: forward FLOPs (est.) ${(ours / 1e9).toFixed(0)} vs ${(theirs / 1e9).toFixed(0)} GFLOP: ${(100 * (1 - ours / theirs)).toFixed(0)}% skipped (lm_head rows ${headRows} vs ${t.tokens})`,
            );
            row(
              `| ${name} | ratio naive / torch | | | | | ${((measured.naive as number) / t.questions_per_s).toFixed(2)}x | |`,
            );
          }
        }
      } finally {
        model.dispose();
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log("\n| model | path | batch | forwards | token slots | seconds | questions/s | peak RSS MiB |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const r of rows) console.log(r);
  console.log("\n(peak RSS is the node process's maximum so far; torch's is its own process)");
}

await main();
