/**
 * LoRA: PEFT init and scaling, enable/disable, save/load in PEFT's format, merge. Merged vs unmerged forwards
 * are the same function computed in a different order (x(W + sAB) vs xW + s(xA)B) in fp32: ~1e-6 apart.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { openSafetensors } from "@hippocrates/safetensors";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import {
  addLoraAdapter,
  type CausalLM,
  loadAdapter,
  loadModel,
  mergeAdapter,
  saveAdapter,
  saveMergedModel,
  withAdaptersDisabled,
} from "../src/index.js";
import { maxAbsDiff, setupWithTempDir, TINY } from "./helpers.js";

const IDS = [[1, 57, 300, 4, 128, 499, 42, 42, 7, 260]];
const tmp = setupWithTempDir("hippo-lora-");

function logits(m: CausalLM, opts: Parameters<CausalLM["forward"]>[1] = {}): Float32Array {
  const out = m.forward(IDS, opts);
  const d = out.logits?.dataSync() as Float32Array;
  out.logits?.dispose();
  return d;
}

/** Give B random values so the adapter changes the output (a fresh adapter has B = 0). */
function randomizeB(m: CausalLM, name = "default", seed = 1): void {
  const a = m.adapters.get(name);
  let s = seed;
  for (const b of a?.b.values() ?? []) {
    tf.tidy(() => b.assign(tf.randomNormal(b.shape, 0, 0.05, "float32", s++)));
  }
}

describe("LoRA", () => {
  it("a fresh adapter (B = 0) leaves the model unchanged; PEFT init bounds and scaling", async () => {
    const m = await loadModel(TINY);
    const base = logits(m);
    const before = tf.memory().numTensors;
    const ad = addLoraAdapter(
      m,
      { r: 4, alpha: 8, targetModules: ["q_proj", "v_proj", "down_proj"] },
      { seed: 3 },
    );
    expect(ad.scaling).toBe(2);
    expect(ad.a.size).toBe(6);
    // A ~ U(-1/sqrt(in), 1/sqrt(in)): q_proj in = 64, down_proj in = 176.
    const aq = ad.a.get("model.layers.0.self_attn.q_proj.weight")?.dataSync() as Float32Array;
    const ad0 = ad.a.get("model.layers.0.mlp.down_proj.weight")?.dataSync() as Float32Array;
    expect(Math.max(...aq.map(Math.abs))).toBeLessThanOrEqual(1 / 8);
    expect(Math.max(...aq.map(Math.abs))).toBeGreaterThan(0.9 / 8);
    expect(Math.max(...ad0.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(176));
    expect(logits(m)).toEqual(base);
    expect(m.trainableVariables().length).toBe(12);
    const named = m.namedTrainableVariables();
    expect([...named.values()]).toEqual(m.trainableVariables());
    expect(named.has("default/base_model.model.model.layers.1.mlp.down_proj.lora_B.weight")).toBe(true);
    expect(addLoraAdapter(m, { r: 16, alpha: 8, useRslora: true }, { name: "rs" }).scaling).toBe(2);
    expect(() => addLoraAdapter(m, { r: 2, targetModules: ["qkv"] }, { name: "bad" })).toThrow(
      /unknown LoRA target module/,
    );
    m.dispose();
    expect(tf.memory().numTensors).toBeLessThan(before);
  });

  it("enable/disable at run time, and merge(base, adapter) = base + adapter", async () => {
    const m = await loadModel(TINY);
    const base = logits(m);
    addLoraAdapter(m, {
      r: 8,
      alpha: 16,
      targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    });
    randomizeB(m);
    const withAdapter = logits(m);
    expect(maxAbsDiff(withAdapter, base)).toBeGreaterThan(1e-3);
    expect(withAdaptersDisabled(m, () => logits(m))).toEqual(base);
    expect(logits(m)).toEqual(withAdapter);
    mergeAdapter(m);
    expect(m.adapters.size).toBe(0);
    expect(maxAbsDiff(logits(m), withAdapter)).toBeLessThan(1e-5);
    m.dispose();
  });

  it("two named adapters can be active together; merging both equals applying both", async () => {
    const m = await loadModel(TINY);
    addLoraAdapter(m, { r: 2, alpha: 4, targetModules: ["q_proj", "up_proj"] }, { name: "a", seed: 1 });
    randomizeB(m, "a", 1);
    addLoraAdapter(m, { r: 3, alpha: 3, targetModules: ["v_proj", "up_proj"] }, { name: "b", seed: 2 });
    randomizeB(m, "b", 7);
    expect(m.activeAdapters).toEqual(["b"]);
    const onlyB = logits(m);
    m.activeAdapters = ["a", "b"];
    const both = logits(m);
    expect(maxAbsDiff(both, onlyB)).toBeGreaterThan(1e-3);
    mergeAdapter(m, "a");
    expect(m.activeAdapters).toEqual(["b"]);
    mergeAdapter(m, "b");
    expect(maxAbsDiff(logits(m), both)).toBeLessThan(1e-5);
    m.dispose();
  });

  it("dropout applies in training mode only", async () => {
    const m = await loadModel(TINY);
    addLoraAdapter(m, { r: 4, alpha: 8, dropout: 0.5 });
    randomizeB(m);
    const evalOut = logits(m);
    expect(logits(m)).toEqual(evalOut);
    expect(maxAbsDiff(logits(m, { training: true }), evalOut)).toBeGreaterThan(1e-4);
    m.dispose();
  });

  it("saves PEFT files that load back bit-exact; merged model saves as HF shards and loads back", async () => {
    const m = await loadModel(TINY);
    addLoraAdapter(
      m,
      { r: 4, alpha: 16, dropout: 0.05, targetModules: ["q_proj", "v_proj"] },
      { baseModelNameOrPath: "tiny-llama" },
    );
    randomizeB(m);
    const dir = join(tmp(), "adapter");
    await saveAdapter(m, dir);
    const cfg = JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8"));
    expect(cfg).toMatchObject({
      peft_type: "LORA",
      task_type: "CAUSAL_LM",
      r: 4,
      lora_alpha: 16,
      lora_dropout: 0.05,
      bias: "none",
      fan_in_fan_out: false,
      use_rslora: false,
      target_modules: ["q_proj", "v_proj"],
      base_model_name_or_path: "tiny-llama",
    });
    const reader = await openSafetensors(join(dir, "adapter_model.safetensors"));
    const keys = [...reader.tensors.keys()].sort();
    expect(keys).toContain("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
    expect(keys).toContain("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight");
    expect(keys.length).toBe(8);
    expect(
      reader.tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")?.shape,
    ).toEqual([4, 64]);
    expect(
      reader.tensors.get("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight")?.shape,
    ).toEqual([32, 4]);
    await reader.close();

    const m2 = await loadModel(TINY);
    const ad2 = await loadAdapter(m2, dir);
    const ad1 = m.adapters.get("default");
    for (const [k, v] of ad1?.a ?? []) expect(ad2.a.get(k)?.dataSync()).toEqual(v.dataSync());
    for (const [k, v] of ad1?.b ?? []) expect(ad2.b.get(k)?.dataSync()).toEqual(v.dataSync());
    expect(logits(m2)).toEqual(logits(m));

    const merged = join(tmp(), "merged");
    await saveMergedModel(m, merged, { maxShardBytes: 100_000 });
    const m3 = await loadModel(merged);
    expect(m3.adapters.size).toBe(0);
    expect(maxAbsDiff(logits(m3), logits(m))).toBeLessThan(1e-5);
    for (const x of [m, m2, m3]) x.dispose();
  });

  it("rejects adapters that do not fit the model or PEFT features it does not implement", async () => {
    const m = await loadModel(TINY);
    addLoraAdapter(m, { r: 2, targetModules: ["q_proj"] });
    const dir = join(tmp(), "bad");
    await saveAdapter(m, dir);
    const cfgPath = join(dir, "adapter_config.json");
    const good = await readFile(cfgPath, "utf8");
    const { writeFile } = await import("node:fs/promises");
    await writeFile(cfgPath, good.replace('"use_dora": false', '"use_dora": true'));
    await expect(loadAdapter(m, dir, { name: "x" })).rejects.toThrow(/use_dora/);
    await writeFile(cfgPath, good.replace('"r": 2', '"r": 3'));
    await expect(loadAdapter(m, dir, { name: "y" })).rejects.toThrow(/wrong shape/);
    await writeFile(cfgPath, good.replace('"q_proj"', '"k_proj"'));
    await expect(loadAdapter(m, dir, { name: "z" })).rejects.toThrow(/lacks a LoRA weight/);
    m.dispose();
  });
});
