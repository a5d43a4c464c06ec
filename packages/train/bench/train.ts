/**
 * Training throughput on the paper's data shapes, against PyTorch doing the same steps the way the Python tools
 * do by default (bench/torch_train.py, same token ids, same run). SmolLM-135M shape (30 layers, hidden 576,
 * vocab 49152, tied), random weights, the presets' LoRA, AdamW, clipping 1.0; tfjs with per-layer gradient
 * checkpointing (the 4 GiB wasm heap needs it), PyTorch without (HF Trainer's default).
 *
 * - sft: MedQA questions with options as prompts (masked) and the answer as the response, the paper's batch of
 *   8 per step, LoRA r32 on all linear layers (SFT preset). Effective tokens/s = all tokens of the examples per
 *   second. tfjs: micro-batches of 3 in one padding-free row each, attention per example, lm_head on the
 *   answer tokens only. PyTorch: the 8 padded to the longest in one batch, full logits (HF Trainer).
 *   sft3: the same with batches of 3 on both sides.
 * - dpo: MedQA questions as prompts, PubMedQA long answers as chosen and rejected, 2 pairs per micro-batch,
 *   new LoRA r8 on q/v (DPO preset), reference log-probs precomputed on both sides. Pairs/s. tfjs: one prompt
 *   copy per pair, padding-free, head on response tokens. PyTorch: TRL's concatenated forward.
 * - cpt: PubMedQA contexts as documents (BOS text EOS) packed into blocks, 2 x 256 per micro-batch, LoRA r8 on
 *   the MLP (CPT preset). Tokens/s. Both sides run every position (PyTorch: group_texts, causal mask).
 *
 *   pnpm --filter @hippocrates/train bench                      # all four, 3 measured steps each
 *   WORKLOAD=sft STEPS=1 LAYERS=6 TORCH=0 pnpm ... bench        # one workload, short (no PyTorch)
 *   THREADS, TRANSPOSE_CACHE_MB, CPT_BLOCK (256), SFT_BATCH (8) / SFT_MICRO (3) / DPO_BATCH (2) override the
 *   defaults (see SFT_BATCH below); PROFILE=1 prints one extra step's kernels and matrix products by time.
 * Each workload runs in its own process (so its peak memory is its own); rows print as they are measured.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describeBackend, initBackend } from "@hippocrates/backend";
import { IGNORE_INDEX, type TokenizedExample, type TokenizedPreference } from "@hippocrates/core";
import { createPacker } from "@hippocrates/data";
import {
  addLoraAdapter,
  type CausalLM,
  createRandomModel,
  type LoraConfig,
  wasmHeapBytes,
} from "@hippocrates/model";
import { loadTokenizer } from "@hippocrates/tokenizer";
import * as tf from "@tensorflow/tfjs-core";
import { SMOLLM_135M } from "../../model/bench/shapes.js";
import { createAdamW } from "../src/adamw.js";
import { collateLm, type PackedBatch, packExamples, packPreferences } from "../src/batch.js";
import { clipByGlobalNorm } from "../src/clip.js";
import { accumulateGradients } from "../src/loop.js";
import { CPT_PRESET, DPO_PRESET, SFT_PRESET } from "../src/presets.js";
import { loraConfigOf } from "../src/stages.js";
import { dpoTask, lmTask, type TrainTask } from "../src/tasks.js";

const SHARED = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
const MEDQA = `${SHARED}benchmarks/medqa/medqa_us_4options_test.jsonl`;
const PUBMEDQA = `${SHARED}benchmarks/pubmedqa/ori_pqal.json`;
const TOKENIZER = `${SHARED}tokenizers/llama2`;
const TORCH_SCRIPT = fileURLToPath(new URL("./torch_train.py", import.meta.url));

const env = (k: string, d: string) => process.env[k] ?? d;
const LAYERS = Number(env("LAYERS", "30"));
const STEPS = Number(env("STEPS", "3"));
const THREADS = Number(env("THREADS", "2"));
const RUN_TORCH = env("TORCH", "1") !== "0";
const CPT_BLOCK = Number(env("CPT_BLOCK", "256"));
// SFT_BATCH: examples per optimizer step, the paper's per-device batch of 8 (HF Trainer pads them to their
// longest in one batch). Our side runs them as micro-batches of SFT_MICRO with gradients accumulated (the same
// gradient as one batch): the micro-batches are what fits the 4 GiB wasm heap at 30 layers with
// checkpointing and the W^T cache: the heap's high-water mark grows ~66 MB per layer per 2,457 tokens on top of
// ~2.5 GiB of weights, their cached transposes and XNNPACK's packed copies of both. 8 MedQA examples hung at
// the limit, 4 ran out of memory on their longest micro-batch, 2 DPO pairs peaked at 3.7 GiB. The sft3
// workload runs batches of SFT_MICRO on both sides; DPO runs DPO_BATCH pairs on both sides.
const SFT_BATCH = Number(env("SFT_BATCH", "8"));
const SFT_MICRO = Number(env("SFT_MICRO", "3"));
const DPO_BATCH = Number(env("DPO_BATCH", "2"));
const WORKLOADS = env("WORKLOAD", "cpt,sft,sft3,dpo").split(",");
const PROFILE = env("PROFILE", "0") !== "0";

const SHAPE = { ...SMOLLM_135M, num_hidden_layers: LAYERS };
const BOS = 1;
const EOS = 2;

// ---------------------------------------------------------------------------------------------------------
// Data: real lengths from the shared files, Llama-2 token ids (all below SmolLM's vocabulary of 49,152).

interface MedQa {
  question: string;
  options: Record<string, string>;
  answer: string;
  answer_idx: string;
}

const medqaPrompt = (q: MedQa) =>
  `Question: ${q.question}\n${Object.entries(q.options)
    .map(([l, t]) => `(${l}) ${t}`)
    .join(" ")}\nAnswer:`;

async function sftExamples(n: number): Promise<TokenizedExample[]> {
  const tok = await loadTokenizer(TOKENIZER);
  const rows = readFileSync(MEDQA, "utf8").split("\n").filter(Boolean).slice(0, n);
  const out: TokenizedExample[] = [];
  for (const line of rows) {
    const q = JSON.parse(line) as MedQa;
    const prompt = [BOS, ...(await tok.encode(medqaPrompt(q), { addSpecialTokens: false }))];
    const answer = [
      ...(await tok.encode(` (${q.answer_idx}) ${q.answer}`, { addSpecialTokens: false })),
      EOS,
    ];
    out.push({
      inputIds: [...prompt, ...answer],
      labels: [...prompt.map(() => IGNORE_INDEX), ...answer],
    });
  }
  return out;
}

function pubmedqa(): { contexts: string; longAnswer: string }[] {
  const raw = JSON.parse(readFileSync(PUBMEDQA, "utf8")) as Record<
    string,
    { CONTEXTS: string[]; LONG_ANSWER: string }
  >;
  return Object.values(raw).map((r) => ({ contexts: r.CONTEXTS.join("\n"), longAnswer: r.LONG_ANSWER }));
}

async function dpoPairs(n: number): Promise<TokenizedPreference[]> {
  const tok = await loadTokenizer(TOKENIZER);
  const qs = readFileSync(MEDQA, "utf8").split("\n").filter(Boolean).slice(0, n);
  const answers = pubmedqa();
  const out: TokenizedPreference[] = [];
  for (let i = 0; i < qs.length; i++) {
    const q = JSON.parse(qs[i] as string) as MedQa;
    const enc = async (t: string) => tok.encode(t, { addSpecialTokens: false });
    out.push({
      promptIds: [BOS, ...(await enc(medqaPrompt(q)))],
      chosenIds: [...(await enc(` ${answers[2 * i]?.longAnswer}`)), EOS],
      rejectedIds: [...(await enc(` ${answers[2 * i + 1]?.longAnswer}`)), EOS],
    });
  }
  return out;
}

/** PubMedQA contexts as documents (BOS text EOS) packed into blocks of `size` (data's CPT packer). */
async function cptBlocks(n: number, size: number): Promise<TokenizedExample[]> {
  const tok = await loadTokenizer(TOKENIZER);
  const packer = createPacker({ blockSize: size, eosTokenId: EOS, remainder: "drop" });
  const blocks: TokenizedExample[] = [];
  for (const doc of pubmedqa()) {
    if (blocks.length >= n) break;
    blocks.push(...packer.add([BOS, ...(await tok.encode(doc.contexts, { addSpecialTokens: false }))]));
  }
  return blocks.slice(0, n);
}

// ---------------------------------------------------------------------------------------------------------
// Work accounting: token slots through the layers, rows through the lm_head, and the FLOPs they imply.

interface Work {
  /** Token slots through the decoder layers (padding included). */
  slots: number;
  /** Sum of l^2 over the attention spans: a padded row is one [T, T] span, our packed rows one per example. */
  attnSq: number;
  /** Rows through the lm_head. */
  headRows: number;
}

const addWork = (a: Work, b: Work): Work => ({
  slots: a.slots + b.slots,
  attnSq: a.attnSq + b.attnSq,
  headRows: a.headRows + b.headRows,
});

/** Matrix-product FLOPs of a LoRA training step (forward + input gradients; frozen weights get none). */
function flops(w: Work): number {
  const E = 576;
  const Iw = 1536;
  const kv = 192;
  const perSlotLayer = 2 * (E * E + 2 * E * kv + E * E + 3 * E * Iw); // q, k, v, o, gate, up, down
  const layers = LAYERS * (2 * w.slots * perSlotLayer + 12 * w.attnSq * E); // attention: 4 fwd + 8 bwd
  const head = 2 * 2 * w.headRows * E * 49152; // logits + d hidden
  return layers + head;
}

function sumLengths(items: readonly { length: number }[]): number {
  return items.reduce((s, x) => s + x.length, 0);
}

// ---------------------------------------------------------------------------------------------------------

interface Workload {
  name: string;
  unit: string;
  /** Items per optimizer step (PyTorch runs them as one batch). */
  stepItems: number;
  /** Items per micro-batch on our side (gradients accumulated over the step's micro-batches); default all. */
  micro?: number;
  /** The first `n` items (examples, pairs, blocks) of the workload's data. */
  load: (n: number) => Promise<unknown[]>;
  /** Units of throughput (effective tokens, pairs) of a step's items. */
  unitsOf: (items: unknown[]) => number;
  ours: (items: unknown[]) => Work;
  theirs: (items: unknown[]) => Work;
  lora: LoraConfig;
  task: (model: CausalLM) => Promise<TrainTask<unknown>>;
  torchMode: "lm" | "dpo";
  torchItems: (items: unknown[]) => unknown[];
}

interface Plan extends Omit<Workload, "stepItems" | "load"> {
  /** Micro-batches: the first is the warm-up. */
  batches: unknown[][];
}

/**
 * Our padding-free rows: every slot through the layers, attention per block (an example, or a pair with its
 * shared prompt: a run of one root segment, padding joining the block before it), only the scored rows through
 * the head.
 */
function packedWork(b: PackedBatch): Work {
  const roots = b.parentSegmentIds ?? b.segmentIds;
  let attnSq = 0;
  for (let r = 0; r < b.batchSize; r++) {
    let len = 0;
    for (let t = 0; t < b.seqLen; t++) {
      const k = r * b.seqLen + t;
      if (t > 0 && roots[k] !== -1 && roots[k] !== roots[k - 1]) {
        attnSq += len * len;
        len = 0;
      }
      len++;
    }
    attnSq += len * len;
  }
  return { slots: b.batchSize * b.seqLen, attnSq, headRows: b.picks.length };
}

/** HF Trainer's batch: right-padded to the longest, logits for every slot. */
function paddedLmWork(items: unknown[]): Work {
  const b = collateLm(items as TokenizedExample[], 0);
  const slots = b.batchSize * b.seqLen;
  return { slots, attnSq: b.batchSize * b.seqLen * b.seqLen, headRows: slots };
}

/** The step's items cut into our micro-batches. */
function microBatches(items: unknown[], size: number | undefined): unknown[][] {
  const n = size ?? items.length;
  return Array.from({ length: Math.ceil(items.length / n) }, (_, i) => items.slice(i * n, (i + 1) * n));
}

/** SFT and CPT: every token of the examples counts; the LM task on our side, input_ids + labels on PyTorch's. */
const lmPlan = {
  unitsOf: (items: unknown[]) => sumLengths((items as TokenizedExample[]).map((e) => e.inputIds)),
  task: async (model: CausalLM) => lmTask(model, { padId: 0, checkpointLayers: true }) as TrainTask<unknown>,
  torchMode: "lm" as const,
  torchItems: (items: unknown[]) =>
    (items as TokenizedExample[]).map((e) => ({ input_ids: e.inputIds, labels: e.labels })),
  ours: (items: unknown[]) => packedWork(packExamples(items as TokenizedExample[], 0)),
};

const WORKLOAD_PLANS: Record<string, Workload> = {
  sft: {
    name: `SFT (MedQA question + answer), the paper's batch of ${SFT_BATCH}`,
    unit: "effective tokens/s",
    stepItems: SFT_BATCH,
    micro: SFT_MICRO,
    load: sftExamples,
    ...lmPlan,
    theirs: paddedLmWork,
    lora: loraConfigOf(SFT_PRESET.lora),
  },
  sft3: {
    name: `SFT (MedQA question + answer), batches of ${SFT_MICRO} on both sides`,
    unit: "effective tokens/s",
    stepItems: SFT_MICRO,
    load: sftExamples,
    ...lmPlan,
    theirs: paddedLmWork,
    lora: loraConfigOf(SFT_PRESET.lora),
  },
  dpo: {
    name: "DPO (MedQA prompt, PubMedQA long answers)",
    unit: "pairs/s",
    stepItems: DPO_BATCH,
    load: dpoPairs,
    unitsOf: (b) => b.length,
    ours: (b) => packedWork(packPreferences(b as TokenizedPreference[], 0)),
    theirs: (b) => {
      const ps = b as TokenizedPreference[];
      const T = Math.max(
        ...ps.flatMap((p) => [
          p.promptIds.length + p.chosenIds.length,
          p.promptIds.length + p.rejectedIds.length,
        ]),
      );
      return { slots: 2 * ps.length * T, attnSq: 2 * ps.length * T * T, headRows: 2 * ps.length * T };
    },
    lora: loraConfigOf(DPO_PRESET.lora),
    task: async (model) => {
      // Reference log-probs are precomputed before training on both sides (TRL's precompute_ref_log_probs);
      // their values do not change the work of a step, so both sides get the same constants.
      const task = dpoTask(model, { padId: 0, beta: 0.1, checkpointLayers: true });
      return {
        ...task,
        lossSum: (b: readonly unknown[], c) =>
          task.lossSum(
            (b as TokenizedPreference[]).map((p) => ({
              ...p,
              referenceChosen: -50,
              referenceRejected: -50,
            })),
            c,
          ),
      } as TrainTask<unknown>;
    },
    torchMode: "dpo",
    torchItems: (b) =>
      (b as TokenizedPreference[]).map((p) => ({
        prompt: p.promptIds,
        chosen: p.chosenIds,
        rejected: p.rejectedIds,
        ref_chosen: -50,
        ref_rejected: -50,
      })),
  },
  cpt: {
    name: `CPT (PubMedQA contexts packed, 2 x ${CPT_BLOCK})`,
    unit: "tokens/s",
    stepItems: 2,
    load: (n) => cptBlocks(n, CPT_BLOCK),
    ...lmPlan,
    theirs: (items) => {
      const n = items.length * CPT_BLOCK;
      return { slots: n, attnSq: items.length * CPT_BLOCK * CPT_BLOCK, headRows: n };
    },
    lora: loraConfigOf(CPT_PRESET.lora),
  },
};

/** A workload's data cut into STEPS + 1 micro-batches (one warm-up, STEPS measured). */
async function plan(name: string): Promise<Plan> {
  const workload = WORKLOAD_PLANS[name];
  if (workload === undefined) throw new Error(`unknown workload ${name} (sft, dpo, cpt)`);
  const { stepItems: size, load, ...rest } = workload;
  const all = await load((STEPS + 1) * size);
  return {
    ...rest,
    batches: Array.from({ length: STEPS + 1 }, (_, s) => all.slice(s * size, (s + 1) * size)),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

interface Result {
  workload: string;
  unit: string;
  tfjs: number;
  torch: number | null;
  tfjsStep: number;
  torchStep: number | null;
  flopsOurs: number;
  flopsTheirs: number;
  slotsOurs: number;
  slotsTheirs: number;
  headOurs: number;
  headTheirs: number;
  heapMiB: number | null;
  rssMiB: number;
  torchRssMiB: number | null;
  torchNote: string;
  load: string;
}

/**
 * PROFILE=1: the kernels of one extra step (the last batch, before it is measured) by their share of kernel
 * time, and its matrix products by shape with their GFLOP/s, to see where a step goes. Profiling slows the
 * step down; its time is not measured.
 */
async function printKernelShares(
  name: string,
  task: TrainTask<unknown>,
  micro: unknown[][],
  variables: tf.Variable[],
): Promise<void> {
  const byKernel = new Map<string, { ms: number; calls: number; flop: number }>();
  const add = (key: string, ms: number, flop: number) => {
    const e = byKernel.get(key) ?? { ms: 0, calls: 0, flop: 0 };
    e.ms += ms;
    e.calls++;
    e.flop += flop;
    byKernel.set(key, e);
  };
  const info = await tf.profile(async () => {
    const { grads } = await accumulateGradients(task, micro, variables);
    tf.dispose(grads);
    return [];
  });
  let all = 0;
  for (const k of info.kernels) {
    // customGrad ops appear as "unnamed scope" entries, and those run under tf.grads (the checkpointed layers'
    // recomputation) as "forward": their times include their inner kernels, so skip them.
    if (k.name === "unnamed scope" || k.name === "forward") continue;
    const ms = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    all += ms;
    add(k.name, ms, 0);
    const [a, b] = k.inputShapes;
    if (k.name === "BatchMatMul" && a !== undefined && b !== undefined) {
      const m = a.reduce((x, y) => x * y, 1) / (a[a.length - 1] as number);
      add(`  [${a}] x [${b}]`, ms, 2 * m * (a[a.length - 1] as number) * (b[b.length - 1] as number));
    }
  }
  process.stderr.write(
    `${name}: kernel time ${(all / 1000).toFixed(2)} s in ${info.kernels.length} kernels\n`,
  );
  const top = [...byKernel].sort((x, y) => y[1].ms - x[1].ms).slice(0, 40);
  for (const [k, e] of top) {
    const rate = e.flop > 0 ? `  ${(e.flop / e.ms / 1e6).toFixed(1)} GFLOP/s` : "";
    process.stderr.write(
      `  ${k.padEnd(34)} ${(e.ms / 1000).toFixed(2)} s  ${((100 * e.ms) / all).toFixed(1)}%  ${e.calls} calls${rate}\n`,
    );
  }
}

async function runOne(name: string): Promise<Result> {
  const info = await initBackend({ backend: "wasm", threads: THREADS });
  const p = await plan(name);
  const model = createRandomModel(SHAPE, { seed: 0 });
  if (process.env.TRANSPOSE_CACHE_MB !== undefined) {
    model.transposeCacheBytes = Number(process.env.TRANSPOSE_CACHE_MB) * 2 ** 20;
  }
  const task = await p.task(model);
  addLoraAdapter(model, p.lora, { seed: 1 });
  const variables = model.trainableVariables();
  const optimizer = createAdamW(variables);
  const times: number[] = [];
  const load0 = loadavg()[0] as number;
  for (let s = 0; s < p.batches.length; s++) {
    if (PROFILE && s === p.batches.length - 1)
      await printKernelShares(name, task, microBatches(p.batches[s] as unknown[], p.micro), variables);
    const t0 = performance.now();
    const { grads } = await accumulateGradients(
      task,
      microBatches(p.batches[s] as unknown[], p.micro),
      variables,
    );
    const clipped = clipByGlobalNorm(grads, 1.0);
    optimizer.apply(clipped.grads, 1e-4);
    for (const g of clipped.grads) g.dispose();
    const sec = (performance.now() - t0) / 1000;
    if (s > 0) times.push(sec);
    process.stderr.write(`${name} tfjs step ${s}${s === 0 ? " (warm-up)" : ""}: ${sec.toFixed(2)} s\n`);
  }
  const measured = p.batches.slice(1);
  const units = sum(measured.map(p.unitsOf));
  const tfjsRate = units / sum(times);
  const ours = measured.map((b) => microBatches(b, p.micro).map(p.ours).reduce(addWork));
  const theirs = measured.map(p.theirs);
  const heap = wasmHeapBytes();
  optimizer.dispose();
  model.dispose();

  let torchRate: number | null = null;
  let torchStep: number | null = null;
  let torchRss: number | null = null;
  let torchNote = "not run (TORCH=0)";
  if (RUN_TORCH) {
    const dir = mkdtempSync(join(tmpdir(), "hippo-train-bench-"));
    try {
      const file = join(dir, "job.json");
      writeFileSync(
        file,
        JSON.stringify({
          config: { hidden: 576, intermediate: 1536, vocab: 49152, layers: LAYERS, heads: 9, kv_heads: 3 },
          lora: { r: p.lora.r, alpha: p.lora.alpha, targets: p.lora.targetModules },
          mode: p.torchMode,
          batches: p.batches.map(p.torchItems),
        }),
      );
      const r = spawnSync("/usr/bin/python3", [TORCH_SCRIPT, file], { encoding: "utf8", timeout: 3_600_000 });
      const last = r.stdout.trim().split("\n").pop() ?? "";
      if (r.status === 0 && last.startsWith("{")) {
        const t = JSON.parse(last) as {
          seconds: number;
          step_s: number;
          peak_rss_mib: number;
          gemm_gflops: number;
          blas: string;
        };
        torchRate = units / t.seconds;
        torchStep = t.step_s;
        torchRss = t.peak_rss_mib;
        torchNote = `torch 2 threads, ${t.blas.includes("openblas") ? "OpenBLAS" : t.blas}, GEMM ${t.gemm_gflops.toFixed(0)} GFLOP/s`;
      } else torchNote = `failed: ${(r.stderr || r.stdout).trim().split("\n").pop()}`;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return {
    workload: p.name,
    unit: p.unit,
    tfjs: tfjsRate,
    torch: torchRate,
    tfjsStep: median(times),
    torchStep,
    flopsOurs: sum(ours.map(flops)) / ours.length,
    flopsTheirs: sum(theirs.map(flops)) / theirs.length,
    slotsOurs: sum(ours.map((w) => w.slots)) / ours.length,
    slotsTheirs: sum(theirs.map((w) => w.slots)) / theirs.length,
    headOurs: sum(ours.map((w) => w.headRows)) / ours.length,
    headTheirs: sum(theirs.map((w) => w.headRows)) / theirs.length,
    heapMiB: heap === null ? null : heap / 2 ** 20,
    rssMiB: process.resourceUsage().maxRSS / 1024,
    torchRssMiB: torchRss,
    torchNote: `${torchNote}; tfjs ${describeBackend(info)}`,
    load: `${load0.toFixed(1)} -> ${(loadavg()[0] as number).toFixed(1)}`,
  };
}

function printTable(results: Result[]): void {
  const cpu = cpus();
  console.log(
    `\n### @hippocrates/train: training steps on real shapes, SmolLM-135M shape (${LAYERS} layers), vs PyTorch\n`,
  );
  console.log(
    `machine: ${cpu[0]?.model ?? "?"}, ${cpu.length} cores; ${STEPS} measured steps after 1 warm-up each; FLOPs are the matrix products of one step (forward + input gradients), estimated from the shapes\n`,
  );
  console.log(
    "| workload | tfjs | PyTorch | ratio | step s (tfjs / torch) | token slots / step (tfjs / torch) | lm_head rows / step (tfjs / torch) | GFLOP / step (tfjs / torch) | FLOPs skipped | peak MiB (wasm heap, RSS / torch RSS) | load avg |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of results) {
    const ratio = r.torch === null ? "n/a" : `**${(r.tfjs / r.torch).toFixed(2)}x**`;
    console.log(
      `| ${r.workload} | ${r.tfjs.toFixed(2)} ${r.unit} | ${r.torch === null ? "n/a" : r.torch.toFixed(2)} | ${ratio} | ${r.tfjsStep.toFixed(1)} / ${r.torchStep?.toFixed(1) ?? "-"} | ${r.slotsOurs.toFixed(0)} / ${r.slotsTheirs.toFixed(0)} | ${r.headOurs.toFixed(0)} / ${r.headTheirs.toFixed(0)} | ${(r.flopsOurs / 1e9).toFixed(0)} / ${(r.flopsTheirs / 1e9).toFixed(0)} | ${(100 * (1 - r.flopsOurs / r.flopsTheirs)).toFixed(0)}% | ${r.heapMiB?.toFixed(0) ?? "-"}, ${r.rssMiB.toFixed(0)} / ${r.torchRssMiB?.toFixed(0) ?? "-"} | ${r.load} |`,
    );
  }
  for (const r of results) console.log(`\n${r.workload}: ${r.torchNote}`);
  console.log("\nTargets (issue 15): SFT >= 1.0x, DPO >= 1.0x, CPT step >= 0.45x.");
}

const one = process.argv.indexOf("--one");
if (one >= 0) {
  const r = await runOne(process.argv[one + 1] as string);
  console.log(`RESULT ${JSON.stringify(r)}`);
} else {
  const results: Result[] = [];
  for (const w of WORKLOADS) {
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "--one", w], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      timeout: 7_200_000,
    });
    const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT "));
    if (line === undefined) {
      console.log(`${w}: failed (exit ${r.status}) ${r.stdout.trim().split("\n").pop() ?? ""}`);
      continue;
    }
    results.push(JSON.parse(line.slice(7)) as Result);
    printTable(results.slice(-1));
  }
  if (results.length > 1) printTable(results);
  console.log(`\ntfjs tensors: each workload ran in its own process. ${tf.version_core}`);
}
