/**
 * Checkpoint tensors carry PEFT/HF names, so they must be in the layout those names promise, or a Python user
 * loading `checkpoint-N/trainable.safetensors` gets silently transposed weights (a square q_proj even loads
 * without a shape error). @hippocrates/model holds LoRA A [in, r], B [r, out] and linear weights [in, out]; the
 * checkpoint must hold PEFT's `lora_A.weight` [r, in], `lora_B.weight` [out, r] and HF's [out, in]. Checked
 * against the files that are right by construction: the PEFT adapter saved in the same checkpoint, and the HF
 * model folder written at the end. Resume still restores every bit. Tiny random Llama (wasm backend).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRng, type ModelArtifact, type TokenizedExample } from "@hippocrates/core";
import { createRandomModel, saveModel } from "@hippocrates/model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SFT_PRESET } from "../src/presets.js";
import { type TrainOptions, trainCausalLm } from "../src/stages.js";
import { decodeF32Safetensors, type NamedArray } from "../src/tensorfile.js";
import { SMALL_LLAMA, setupBackend } from "./llama-helpers.js";
import { abortAfter } from "./progress.js";

let root: string;
let base: ModelArtifact;
const VOCAB = 48;

beforeAll(async () => {
  await setupBackend();
  root = await mkdtemp(join(tmpdir(), "hippo-ckpt-layout-"));
  // hidden 64, 4 heads of 16: q_proj and o_proj are square [64, 64], k/v_proj [32, 64], MLP [128, 64] / [64, 128].
  const m = createRandomModel({ ...SMALL_LLAMA, vocab_size: VOCAB }, { seed: 3 });
  await saveModel(m, join(root, "base"));
  m.dispose();
  base = { kind: "hf-model", path: join(root, "base") };
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** Short sequences whose second half is the target (prompt masked), as SFT examples are. */
function examples(n: number): TokenizedExample[] {
  const rng = createRng(5);
  return Array.from({ length: n }, () => {
    const ids = [1, ...Array.from({ length: 11 }, () => 3 + rng.int(VOCAB - 3)), 2];
    return { inputIds: ids, labels: ids.map((t, i) => (i < 6 ? -100 : t)) };
  });
}

const read = async (...p: string[]) => decodeF32Safetensors(await readFile(join(...p)), join(...p));
const bytesOf = (t: NamedArray) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

function options(
  outputDir: string,
  lora: TrainOptions<TokenizedExample>["lora"],
): TrainOptions<TokenizedExample> {
  return {
    ...SFT_PRESET,
    lora,
    model: base,
    train: examples(8),
    outputDir,
    learning_rate: 1e-2,
    per_device_train_batch_size: 2,
    gradient_accumulation_steps: 1,
    num_train_epochs: 1,
    save_steps: 2,
    max_length: 64,
  };
}

/** Every tensor of `got` equals the same-named tensor of `want`: same shape, same bytes. */
function expectSameTensors(got: Map<string, NamedArray>, want: Map<string, NamedArray>, names: string[]) {
  for (const k of names) {
    const g = got.get(k);
    const w = want.get(k);
    expect({ k, shape: g?.shape }).toEqual({ k, shape: w?.shape });
    if (!bytesOf(g as NamedArray).equals(bytesOf(w as NamedArray)))
      expect.fail(`${k}: other values (transposed?)`);
  }
}

describe("checkpoint tensors are in the layout their PEFT/HF names promise", () => {
  it("LoRA: trainable.safetensors and the optimizer moments hold lora_A [r, in] and lora_B [out, r], as the adapter", async () => {
    const out = join(root, "lora");
    await trainCausalLm({ ...options(out, { ...SFT_PRESET.lora, r: 4, lora_alpha: 8 }), max_steps: 2 });
    const ckpt = join(out, "checkpoint-2");
    const trainable = await read(ckpt, "trainable.safetensors");
    const adapter = await read(ckpt, "adapter_model.safetensors");
    expect([...trainable.keys()].sort()).toEqual([...adapter.keys()].sort());
    expect(trainable.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")?.shape).toEqual([
      4, 64,
    ]);
    expect(trainable.get("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight")?.shape).toEqual([
      64, 4,
    ]);
    expectSameTensors(trainable, adapter, [...adapter.keys()]);
    const opt = await read(ckpt, "optimizer.safetensors");
    for (const [k, t] of adapter) {
      expect(opt.get(`exp_avg.${k}`)?.shape).toEqual(t.shape);
      expect(opt.get(`exp_avg_sq.${k}`)?.shape).toEqual(t.shape);
    }
  });

  it("full fine-tuning: trainable.safetensors holds every weight as the HF model folder does ([out, in])", async () => {
    const out = join(root, "full");
    await trainCausalLm({ ...options(out, false), max_steps: 2 });
    const trainable = await read(out, "checkpoint-2", "trainable.safetensors");
    const model = await read(out, "model.safetensors"); // written after step 2, from the same weights
    expect([...trainable.keys()].sort()).toEqual([...model.keys()].sort());
    expect(trainable.get("model.layers.0.self_attn.k_proj.weight")?.shape).toEqual([32, 64]);
    expectSameTensors(trainable, model, [...model.keys()]);
    const opt = await read(out, "checkpoint-2", "optimizer.safetensors");
    for (const [k, t] of model) expect(opt.get(`exp_avg.${k}`)?.shape).toEqual(t.shape);
  });

  it("full fine-tuning stopped at step 2 and resumed ends with the uninterrupted run's weights, bit for bit", async () => {
    const straight = join(root, "full-straight");
    await trainCausalLm({ ...options(straight, false), max_steps: 4 });
    const dir = join(root, "full-resumed");
    const controller = new AbortController();
    const stopAt2 = abortAfter(2, controller);
    await expect(
      trainCausalLm({ ...options(dir, false), max_steps: 4, progress: stopAt2, signal: controller.signal }),
    ).rejects.toMatchObject({ code: "ABORTED" });
    const resumed = await trainCausalLm({ ...options(dir, false), max_steps: 4, resume: true });
    expect(resumed.metrics.global_step).toBe(4);
    const a = await read(straight, "model.safetensors");
    const b = await read(dir, "model.safetensors");
    expectSameTensors(b, a, [...a.keys()]);
    const straightState = JSON.parse(await readFile(join(straight, "hippo_state.json"), "utf8"));
    expect(resumed.metrics.train_loss).toBe(straightState.train_loss);
  });
});
