/**
 * Artifacts: loading an adapter chain (merged in order), the base paths written into and read from
 * adapter_config.json (relative to the adapter folder, never machine-absolute; Hub ids unchanged), and the
 * merge stage (HF folder in the chosen dtype, tokenizer files beside it, nothing half-written).
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ModelArtifact, type StageContext, silentProgress } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  adapterArtifact,
  addLoraAdapter,
  basePathOf,
  createRandomModel,
  loadAdapter,
  loadArtifact,
  loadModel,
  mergeStage,
  peftBasePath,
  saveAdapter,
  saveModel,
} from "../src/index.js";
import { maxAbsDiff, SHARED, setup, smallLlamaConfig } from "./helpers.js";

const CONFIG = smallLlamaConfig({ max_position_embeddings: 64, tie_word_embeddings: false });

let dir: string;
let chain: ModelArtifact;
const IDS = [[1, 5, 9, 13, 2, 40, 7]];

/** Save a random adapter (B random, so it changes the model) of `m` under `name`, then delete it from `m`. */
async function randomAdapter(path: string, seed: number, base: string) {
  const m = await loadModel(join(dir, "base"));
  const a = addLoraAdapter(m, { r: 2, alpha: 4, targetModules: ["q_proj", "up_proj"] }, { seed });
  for (const b of a.b.values()) tf.tidy(() => b.assign(tf.randomNormal(b.shape, 0, 0.3, "float32", seed)));
  a.baseModelNameOrPath = base;
  await saveAdapter(m, path);
  m.dispose();
}

const logits = (m: { forward: (ids: number[][]) => { logits: tf.Tensor3D | null } }) => {
  const t = m.forward(IDS).logits as tf.Tensor3D;
  const v = t.dataSync().slice();
  t.dispose();
  return v;
};

beforeAll(async () => {
  await setup();
  dir = await mkdtemp(join(tmpdir(), "hippo-artifact-"));
  const m = createRandomModel(CONFIG, { seed: 2 });
  await saveModel(m, join(dir, "base"));
  m.dispose();
  await randomAdapter(join(dir, "a1"), 1, "../base");
  await randomAdapter(join(dir, "a2"), 2, "../base");
  chain = {
    kind: "peft-adapter",
    path: join(dir, "a2"),
    base: {
      kind: "peft-adapter",
      path: join(dir, "a1"),
      base: { kind: "hf-model", path: join(dir, "base") },
    },
  };
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("loadArtifact", () => {
  it("merges a chain in order: equal to the base with both adapters applied on the fly", async () => {
    const merged = await loadArtifact(chain);
    const live = await loadModel(join(dir, "base"));
    await loadAdapter(live, join(dir, "a1"), { name: "a1" });
    await loadAdapter(live, join(dir, "a2"), { name: "a2" });
    live.activeAdapters = ["a1", "a2"];
    const base = await loadModel(join(dir, "base"));
    // float32: (W + s1 A1 B1 + s2 A2 B2) x against W x + s1 x A1 B1 + s2 x A2 B2, logits of magnitude ~1.
    expect(maxAbsDiff(logits(merged), logits(live))).toBeLessThan(1e-5);
    expect(maxAbsDiff(logits(merged), logits(base))).toBeGreaterThan(1e-2);
    expect(merged.adapters.size).toBe(0);
    for (const m of [merged, live, base]) m.dispose();
    expect(basePathOf(chain)).toBe(join(dir, "base"));
  });
});

describe("base_model_name_or_path", () => {
  it("is written relative to the adapter folder, starting ./ or ../, never absolute; Hub ids unchanged", () => {
    expect(peftBasePath("/runs/x/dpo", "/runs/x/dpo/input_model")).toBe("./input_model");
    expect(peftBasePath("/runs/x/dpo", "/models/llama")).toBe("../../../models/llama");
    expect(peftBasePath("/runs/x/dpo/checkpoint-4", "/runs/x/dpo/input_model")).toBe("../input_model");
    expect(peftBasePath(join(dir, "a1"), join(dir, "base"))).toBe("../base");
    expect(peftBasePath("/runs/x", "meta-llama/Llama-2-7b-hf")).toBe("meta-llama/Llama-2-7b-hf");
    expect(peftBasePath("/runs/x", "./models/llama")).toMatch(/^\.\.?\//);
  });

  it("is read back against the adapter folder; a Hub id stays an id; a missing base is an error", async () => {
    expect(await adapterArtifact(join(dir, "a1"))).toEqual({
      kind: "peft-adapter",
      path: join(dir, "a1"),
      base: { kind: "hf-model", path: join(dir, "base") },
    });
    const hub = join(dir, "hub-adapter");
    await mkdir(hub);
    const cfg = JSON.parse(await readFile(join(dir, "a1", "adapter_config.json"), "utf8"));
    await writeFile(
      join(hub, "adapter_config.json"),
      JSON.stringify({ ...cfg, base_model_name_or_path: "meta-llama/Llama-2-7b-hf" }),
    );
    expect((await adapterArtifact(hub)).base).toEqual({ kind: "hf-model", path: "meta-llama/Llama-2-7b-hf" });
    await writeFile(
      join(hub, "adapter_config.json"),
      JSON.stringify({ ...cfg, base_model_name_or_path: null }),
    );
    await expect(adapterArtifact(hub)).rejects.toThrow(/adapter_config\.json, key "base_model_name_or_path"/);
  });
});

describe("merge stage", () => {
  const tokenizerDir = join(SHARED, "tokenizers/llama2");
  const ctx = (outputDir: string): StageContext => ({
    outputDir,
    runDir: dir,
    baseDir: dir,
    tokenizer: tokenizerDir,
    seed: 0,
    progress: silentProgress,
    signal: new AbortController().signal,
    log: () => {},
  });
  const settings = async (entry: unknown, stage = mergeStage()) => {
    const r = await stage.settings["~standard"].validate(entry);
    if (r.issues) throw new Error(r.issues.map((i) => i.message).join("; "));
    return r.value;
  };

  it("settings: dtype float32 by default, torch's names, unknown keys with a suggestion", async () => {
    expect(await settings({})).toEqual({ dtype: "float32" });
    expect(await settings({}, mergeStage({ dtype: "bfloat16" }))).toEqual({ dtype: "bfloat16" });
    const r = await mergeStage().settings["~standard"].validate({ dtyp: "float16" });
    expect(r.issues?.[0]?.message).toBe('unknown key "dtyp"; did you mean "dtype"?');
    expect((await mergeStage().settings["~standard"].validate({ dtype: "int8" })).issues).toHaveLength(1);
  });

  it("folds the chain into an HF folder that loads as the chain, with the tokenizer beside it", async () => {
    const stage = mergeStage();
    const out = await stage.run({ model: chain, config: await settings({}) }, ctx(join(dir, "merge")));
    const folder = join(dir, "merge", "model");
    expect(out).toEqual({ model: { kind: "hf-model", path: folder }, metrics: {}, files: { model: folder } });
    expect((await readdir(join(dir, "merge"))).sort()).toEqual(["model"]);
    expect(existsSync(join(folder, "tokenizer.json"))).toBe(true);
    expect(existsSync(join(folder, "tokenizer_config.json"))).toBe(true);
    const a = await loadModel(folder);
    const b = await loadArtifact(chain);
    expect(maxAbsDiff(logits(a), logits(b))).toBe(0); // the same float32 weights, saved and read back
    a.dispose();
    b.dispose();
  });

  it("saves in the chosen dtype (config.json's torch_dtype) and passes a full model on unchanged", async () => {
    const stage = mergeStage();
    await stage.run({ model: chain, config: await settings({ dtype: "bfloat16" }) }, ctx(join(dir, "m16")));
    const cfg = JSON.parse(await readFile(join(dir, "m16", "model", "config.json"), "utf8"));
    expect(cfg.torch_dtype).toBe("bfloat16");
    const full: ModelArtifact = { kind: "hf-model", path: join(dir, "base") };
    const out = await stage.run({ model: full, config: await settings({}) }, ctx(join(dir, "m-full")));
    expect(out.model).toBe(full);
    expect(existsSync(join(dir, "m-full"))).toBe(false);
  });
});
