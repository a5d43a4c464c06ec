/**
 * Training throughput: one LoRA r8 optimizer step (CPT preset targets: gate/up/down_proj, alpha 16) on a random
 * model of the SmolLM-135M shape, batch 2 x 256, through the real training step of this package
 * (accumulateGradients -> clipByGlobalNorm -> AdamW), with per-layer gradient checkpointing (without it the
 * 30-layer tape does not fit the 4 GiB wasm heap). Prints a markdown table and, when Debian's PyTorch is
 * installed, runs bench/torch_train.py on the same shapes and prints the ratio.
 *
 *   pnpm --filter @hippocrates/train bench            (STEPS=3 by default, after one warm-up step)
 */
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { describeBackend, initBackend } from "@hippocrates/backend";
import { createRng, type TokenizedExample } from "@hippocrates/core";
import { addLoraAdapter, createRandomModel, wasmHeapBytes } from "@hippocrates/model";
import * as tf from "@tensorflow/tfjs-core";
import { createAdamW } from "../src/adamw.js";
import { clipByGlobalNorm } from "../src/clip.js";
import { accumulateGradients } from "../src/loop.js";
import { lmTask } from "../src/tasks.js";

const SMOLLM_135M = {
  model_type: "llama",
  architectures: ["LlamaForCausalLM"],
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: Number(process.env.LAYERS ?? 30),
  num_attention_heads: 9,
  num_key_value_heads: 3,
  hidden_act: "silu",
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  bos_token_id: 1,
  eos_token_id: 2,
};
const BATCH = 2;
const SEQ = 256;
const STEPS = Number(process.env.STEPS ?? 3);

// 2 threads by default: the same as the PyTorch side (torch.set_num_threads(2)); THREADS overrides.
const info = await initBackend({
  backend: (process.env.BACKEND as "wasm" | undefined) ?? "wasm",
  threads: Number(process.env.THREADS ?? 2),
});
const model = createRandomModel(SMOLLM_135M, { seed: 0 });
addLoraAdapter(
  model,
  { r: 8, alpha: 16, dropout: 0, targetModules: ["gate_proj", "up_proj", "down_proj"] },
  { seed: 1 },
);
// TRANSPOSE_CACHE_MB=0 measures the step without cached W^T (lower memory, slower backward products).
if (process.env.TRANSPOSE_CACHE_MB !== undefined) {
  model.transposeCacheBytes = Number(process.env.TRANSPOSE_CACHE_MB) * 2 ** 20;
}
const variables = model.trainableVariables();
const optimizer = createAdamW(variables);
const task = lmTask(model, { padId: 0, checkpointLayers: true });
const rng = createRng(0);
const batch = (): TokenizedExample[] =>
  Array.from({ length: BATCH }, () => {
    const ids = Array.from({ length: SEQ }, () => 3 + rng.int(SMOLLM_135M.vocab_size - 3));
    return { inputIds: ids, labels: ids };
  });

async function step(): Promise<number> {
  const t0 = performance.now();
  const { grads } = await accumulateGradients(task, [batch()], variables);
  const clipped = clipByGlobalNorm(grads, 1.0);
  optimizer.apply(clipped.grads, 1e-4);
  for (const g of clipped.grads) g.dispose();
  return (performance.now() - t0) / 1000;
}

await step(); // warm-up (kernel set-up, first allocations)
const times: number[] = [];
for (let i = 0; i < STEPS; i++) times.push(await step());
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)] as number;
const tokensPerSecond = (BATCH * SEQ) / median;
const peakRssMiB = process.resourceUsage().maxRSS / 1024;
// The WebAssembly heap only grows, so its size is the peak of weights + caches + activations + gradients.
const wasmHeap = wasmHeapBytes();
const heapMiB = wasmHeap === null ? "-" : (wasmHeap / 2 ** 20).toFixed(0);
const trainable = variables.reduce((s, v) => s + v.size, 0);

process.stderr.write(
  `tfjs: median step ${median.toFixed(2)} s, ${tokensPerSecond.toFixed(1)} tokens/s, peak RSS ${peakRssMiB.toFixed(0)} MiB, wasm heap ${heapMiB} MiB\n`,
);

let torch: { tokens_per_second: number; threads: number; blas: string } | undefined;
let torchNote = "";
const script = fileURLToPath(new URL("./torch_train.py", import.meta.url));
const py = spawnSync("/usr/bin/python3", [script, String(SMOLLM_135M.num_hidden_layers), String(STEPS)], {
  encoding: "utf8",
  timeout: 1_800_000,
});
if (py.status === 0) {
  const line = py.stdout.trim().split("\n").at(-1) ?? "";
  torch = JSON.parse(line) as typeof torch;
} else torchNote = (py.stdout + py.stderr).trim().split("\n").at(-1) ?? `python exit ${py.status}`;

const cpu = cpus();
console.log(
  `\n### @hippocrates/train: LoRA r8 training step, SmolLM-135M shape (${SMOLLM_135M.num_hidden_layers} layers, vocab 49152, tied)\n`,
);
console.log(`machine: ${cpu[0]?.model ?? "?"}, ${cpu.length} cores; backend: ${describeBackend(info)}`);
console.log(
  `batch ${BATCH} x ${SEQ} tokens, LoRA r8 alpha 16 on gate/up/down_proj (${trainable} trainable), AdamW, clipping 1.0, gradient checkpointing per layer, W^T cache ${(model.transposeCacheBytes / 2 ** 20).toFixed(0)} MiB; median of ${STEPS} steps after 1 warm-up\n`,
);
console.log("| implementation | step (s) | tokens/s | peak RSS (MiB) | wasm heap (MiB) |");
console.log("|---|---|---|---|---|");
console.log(
  `| tfjs (${info.name}) | ${median.toFixed(2)} | ${tokensPerSecond.toFixed(1)} | ${peakRssMiB.toFixed(0)} | ${heapMiB} |`,
);
if (torch) {
  console.log(
    `| PyTorch (${torch.threads} threads, BLAS: ${torch.blas}) | ${((BATCH * SEQ) / torch.tokens_per_second).toFixed(2)} | ${torch.tokens_per_second.toFixed(1)} | - | - |`,
  );
  console.log(
    `\nratio tfjs / PyTorch: ${(tokensPerSecond / torch.tokens_per_second).toFixed(2)}x (target >= 0.2x)`,
  );
} else console.log(`\nPyTorch comparison skipped: ${torchNote}`);
console.log(`tfjs tensors alive after the run: ${tf.memory().numTensors}`);
optimizer.dispose();
model.dispose();
