/**
 * Forward throughput: tokens/s of one full forward (logits for every position) on the tiny Llama and on a
 * random-weight model of the SmolLM-135M shape, the share of kernel time spent in matMul, peak RSS, and the
 * same forward in PyTorch (bench/torch_forward.py) with the ratio. Markdown on stdout.
 *
 *   pnpm bench                 # both models, batch 4
 *   pnpm bench -- --quick      # tiny model only
 */
import { execFileSync } from "node:child_process";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { describeBackend, initBackend } from "@hippocrates/backend";
import * as tf from "@tensorflow/tfjs-core";
import { type CausalLM, createRandomModel, loadModel } from "../src/index.js";
import { SMOLLM_135M } from "./shapes.js";

const quick = process.argv.includes("--quick");
const RUNS = 3;
const TINY = fileURLToPath(new URL("../../../../shared/data/models/tiny-llama-hf", import.meta.url));

interface Row {
  model: string;
  batch: number;
  seq: number;
  tokensPerS: number;
  matMulShare: number;
  torch: number | null;
  note: string;
}

function randomIds(batch: number, seq: number, vocab: number): number[][] {
  let s = 12345;
  return Array.from({ length: batch }, () =>
    Array.from({ length: seq }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s % vocab;
    }),
  );
}

function forwardSeconds(model: CausalLM, ids: number[][]): number {
  const t0 = performance.now();
  const { logits } = model.forward(ids);
  logits?.dataSync();
  logits?.dispose();
  return (performance.now() - t0) / 1000;
}

async function matMulShare(model: CausalLM, ids: number[][]): Promise<number> {
  const info = await tf.profile(() => {
    const { logits } = model.forward(ids);
    return logits as tf.Tensor;
  });
  let mm = 0;
  let all = 0;
  for (const k of info.kernels) {
    const t = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    // customGrad ops appear as "unnamed scope" entries whose time includes their inner kernels: skip them.
    if (k.name === "unnamed scope") continue;
    all += t;
    if (k.name === "BatchMatMul" || k.name === "_FusedMatMul") mm += t;
  }
  tf.dispose(info.result as tf.Tensor);
  return all > 0 ? mm / all : 0;
}

function torchTokensPerS(shape: Record<string, unknown>): { value: number | null; note: string } {
  try {
    const out = execFileSync(
      "/usr/bin/python3",
      [fileURLToPath(new URL("./torch_forward.py", import.meta.url)), JSON.stringify(shape)],
      {
        encoding: "utf8",
        timeout: 600_000,
      },
    );
    const r = JSON.parse(out.trim().split("\n").pop() ?? "{}") as {
      tokens_per_s?: number;
      error?: string;
      gemm_gflops?: number;
      torch?: string;
    };
    if (r.error !== undefined) return { value: null, note: r.error };
    return {
      value: r.tokens_per_s ?? null,
      note: `torch ${r.torch}, GEMM ${r.gemm_gflops?.toFixed(0)} GFLOP/s`,
    };
  } catch (e) {
    return { value: null, note: `PyTorch skipped: ${(e as Error).message.split("\n")[0]}` };
  }
}

async function bench(name: string, model: CausalLM, batch: number, seq: number, tied: boolean): Promise<Row> {
  const ids = randomIds(batch, seq, model.dims.vocab);
  forwardSeconds(model, ids); // warm-up (XNNPACK packs each weight once)
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) times.push(forwardSeconds(model, ids));
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)] as number;
  const share = await matMulShare(model, ids);
  const d = model.dims;
  const torch = torchTokensPerS({
    hidden: d.hidden,
    intermediate: d.intermediate,
    layers: d.layers,
    heads: d.heads,
    kv_heads: d.kvHeads,
    vocab: d.vocab,
    tied,
    batch,
    seq,
    runs: RUNS,
  });
  return {
    model: name,
    batch,
    seq,
    tokensPerS: (batch * seq) / median,
    matMulShare: share,
    torch: torch.value,
    note: torch.note,
  };
}

const info = await initBackend();
const rows: Row[] = [];
const tiny = await loadModel(TINY);
rows.push(await bench("tiny-llama (2 layers, hidden 64)", tiny, 4, 128, false));
tiny.dispose();
if (!quick) {
  const smol = createRandomModel(SMOLLM_135M, { seed: 0 });
  rows.push(await bench("SmolLM-135M shape (random weights)", smol, 4, 256, true));
  smol.dispose();
}

const cpu = os.cpus()[0]?.model ?? "unknown CPU";
console.log(`\n### @hippocrates/model forward\n`);
console.log(
  `Backend: ${describeBackend(info)}. Machine: ${cpu}, ${os.cpus().length} cores, Node ${process.version}. Median of ${RUNS} runs after a warm-up; one forward = logits for every position.\n`,
);
console.log(
  "| model | batch x seq | tokens/s | matMul share of kernel time | PyTorch tokens/s | ratio (tfjs / PyTorch) |",
);
console.log("|---|---|---|---|---|---|");
for (const r of rows) {
  const ratio = r.torch === null ? "n/a" : `${(r.tokensPerS / r.torch).toFixed(2)}x`;
  console.log(
    `| ${r.model} | ${r.batch} x ${r.seq} | ${r.tokensPerS.toFixed(0)} | ${(100 * r.matMulShare).toFixed(0)}% | ${r.torch === null ? "n/a" : r.torch.toFixed(0)} | ${ratio} |`,
  );
}
console.log(
  `\nPeak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB. PyTorch: ${rows.map((r) => r.note).join("; ")}.`,
);
console.log(
  "Target (issue 15): no regression of the forward, at least 0.4x PyTorch (batch 4 x 256, SmolLM-135M shape).",
);
