/**
 * Config parsing, loading, saving and random init: real files written with @hippocrates/safetensors, bad
 * inputs rejected with HippoError naming the file and key.
 */
import { copyFile, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HippoError } from "@hippocrates/core";
import {
  bf16ToFloat32,
  f16ToFloat32,
  float32ToBF16,
  float32ToF16,
  openCheckpoint,
  writeSafetensors,
} from "@hippocrates/safetensors";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import {
  createRandomModel,
  estimateModelBytes,
  loadModel,
  parseModelConfig,
  saveModel,
} from "../src/index.js";
import { setupWithTempDir, TINY } from "./helpers.js";

const tmp = setupWithTempDir("hippo-model-io-");

const SMALL = {
  model_type: "llama",
  vocab_size: 96,
  hidden_size: 32,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  pad_token_id: 0,
  tie_word_embeddings: false,
};

function catchError(f: () => unknown): HippoError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(HippoError);
    return e as HippoError;
  }
  throw new Error("no error thrown");
}

describe("config.json", () => {
  it("parses the tiny Llama's config with HF defaults", async () => {
    const c = parseModelConfig(JSON.parse(await readFile(join(TINY, "config.json"), "utf8")));
    expect(c.head_dim).toBe(16);
    expect(c.num_key_value_heads).toBe(2);
    expect(c.sliding_window).toBeNull();
    const noKv = parseModelConfig({ ...SMALL, num_key_value_heads: undefined });
    expect(noKv.num_key_value_heads).toBe(4); // default = heads (MHA)
  });

  it("names the file and key of a bad config, with expected vs got", () => {
    const unknown = catchError(() => parseModelConfig({ ...SMALL, model_type: "gpt2" }, "cfg.json"));
    expect(unknown.message).toMatch(/cfg\.json, key "model_type".*expected llama \| mistral, got "gpt2"/);
    const missing = catchError(() => parseModelConfig({ ...SMALL, hidden_size: undefined }, "cfg.json"));
    expect(missing.location.key).toBe("hidden_size");
    const wrong = catchError(() => parseModelConfig({ ...SMALL, num_hidden_layers: "2" }, "cfg.json"));
    expect(wrong.message).toMatch(/num_hidden_layers.*expected positive integer, got "2"/);
    const gqa = catchError(() => parseModelConfig({ ...SMALL, num_key_value_heads: 3 }));
    expect(gqa.location.key).toBe("num_key_value_heads");
    const rope = catchError(() =>
      parseModelConfig({ ...SMALL, rope_scaling: { rope_type: "yarn", factor: 2 } }),
    );
    expect(rope.code).toBe("UNSUPPORTED");
    const l3 = catchError(() =>
      parseModelConfig({ ...SMALL, rope_scaling: { rope_type: "llama3", factor: 8 } }),
    );
    expect(l3.location.key).toBe("rope_scaling.low_freq_factor");
  });
});

describe("load / save", () => {
  it("random init follows HF (normal(0, 0.02), norms 1, padding row 0) and is seeded", () => {
    const m = createRandomModel(SMALL, { seed: 1 });
    const emb = m.weights.get("model.embed_tokens.weight")?.dataSync() as Float32Array;
    expect(emb.slice(0, 32).every((x) => x === 0)).toBe(true);
    const q = m.weights.get("model.layers.0.self_attn.q_proj.weight")?.dataSync() as Float32Array;
    const mean = q.reduce((a, b) => a + b, 0) / q.length;
    const std = Math.sqrt(q.reduce((a, b) => a + (b - mean) ** 2, 0) / q.length);
    expect(Math.abs(std - 0.02)).toBeLessThan(0.003);
    expect(Array.from(m.weights.get("model.norm.weight")?.dataSync() ?? [])).toEqual(new Array(32).fill(1));
    const m2 = createRandomModel(SMALL, { seed: 1 });
    expect(m2.weights.get("lm_head.weight")?.dataSync()).toEqual(m.weights.get("lm_head.weight")?.dataSync());
    m.dispose();
    m2.dispose();
  });

  it("saveModel -> loadModel is bit-exact (F32, sharded), BF16 saves round to nearest even, tied heads", async () => {
    const before = tf.memory().numTensors;
    const m = createRandomModel(SMALL, { seed: 2 });
    const dir = join(tmp(), "f32");
    await saveModel(m, dir, { maxShardBytes: 20_000 });
    const files = await readdir(dir);
    expect(files).toContain("model.safetensors.index.json");
    expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(1);
    // HF layout on disk: [out, in].
    const ck = await openCheckpoint(dir);
    expect(ck.tensors.get("model.layers.0.mlp.gate_proj.weight")?.shape).toEqual([40, 32]);
    await ck.close();
    const back = await loadModel(dir);
    for (const [name, w] of m.weights) expect(back.weights.get(name)?.dataSync(), name).toEqual(w.dataSync());

    const bdir = join(tmp(), "bf16");
    await saveModel(m, bdir, { dtype: "BF16" });
    expect(JSON.parse(await readFile(join(bdir, "config.json"), "utf8")).torch_dtype).toBe("bfloat16");
    const b16 = await loadModel(bdir);
    for (const [name, w] of m.weights) {
      const want = bf16ToFloat32(float32ToBF16(w.dataSync() as Float32Array));
      expect(b16.weights.get(name)?.dataSync(), name).toEqual(want);
    }
    const hdir = join(tmp(), "f16");
    await saveModel(m, hdir, { dtype: "F16" });
    const f16 = await loadModel(hdir);
    for (const [name, w] of m.weights) {
      const want = f16ToFloat32(float32ToF16(w.dataSync() as Float32Array));
      expect(f16.weights.get(name)?.dataSync(), name).toEqual(want);
    }
    f16.dispose();
    const tied = createRandomModel({ ...SMALL, tie_word_embeddings: true }, { seed: 3 });
    const tdir = join(tmp(), "tied");
    await saveModel(tied, tdir);
    const tback = await loadModel(tdir);
    expect(tback.weights.has("lm_head.weight")).toBe(false);
    const a = tied.forward([[1, 2, 3]]).logits as tf.Tensor;
    const b = tback.forward([[1, 2, 3]]).logits as tf.Tensor;
    expect(b.dataSync()).toEqual(a.dataSync());
    tf.dispose([a, b]);
    for (const x of [m, back, b16, tied, tback]) x.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("rejects missing, extra and mis-shaped weights, naming the key and shapes", async () => {
    const dir = join(tmp(), "bad");
    await mkdir(dir, { recursive: true });
    await copyFile(join(TINY, "config.json"), join(dir, "config.json"));
    const ck = await openCheckpoint(TINY);
    const entries: [string, { dtype: "F32"; shape: number[]; data: Float32Array }][] = [];
    for (const [name, info] of ck.tensors)
      entries.push([name, { dtype: "F32", shape: info.shape, data: await ck.readFloat32(name) }]);
    await ck.close();
    const write = (list: typeof entries) => writeSafetensors(join(dir, "model.safetensors"), list);

    await write(entries.filter(([n]) => n !== "model.layers.1.mlp.up_proj.weight"));
    await expect(loadModel(dir)).rejects.toThrow(
      /key "model.layers.1.mlp.up_proj.weight".*lacks a weight.*expected a tensor of shape \[176,64\]/,
    );

    await write([
      ...entries,
      ["model.layers.2.mlp.up_proj.weight", { dtype: "F32", shape: [1], data: new Float32Array(1) }],
    ]);
    await expect(loadModel(dir)).rejects.toThrow(/key "model.layers.2.mlp.up_proj.weight".*does not use/);

    await write(
      entries.map(([n, t]) => (n === "model.norm.weight" ? [n, { ...t, shape: [2, 32] }] : [n, t])),
    );
    await expect(loadModel(dir)).rejects.toThrow(/key "model.norm.weight".*expected \[64\], got \[2,32\]/);

    await writeFile(join(dir, "config.json"), JSON.stringify({ model_type: "llama" }));
    await expect(loadModel(dir)).rejects.toThrow(/config\.json, key "hidden_size".*missing/);
  });

  it("refuses a model beyond the wasm heap before allocating anything", () => {
    const big = {
      ...SMALL,
      vocab_size: 32000,
      hidden_size: 4096,
      intermediate_size: 11008,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 32,
    };
    expect(estimateModelBytes(parseModelConfig(big))).toBeGreaterThan(26e9);
    const before = tf.memory().numTensors;
    const e = catchError(() => createRandomModel(big));
    expect(e.code).toBe("OUT_OF_MEMORY");
    expect(e.message).toMatch(/expected at most 4\.00 GiB, got 25\.\d+ GiB.*tfjs-node|tfjs-node.*4\.00 GiB/);
    expect(tf.memory().numTensors).toBe(before);
  });
});
