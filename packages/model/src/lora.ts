/**
 * LoRA adapters, compatible with PEFT's files: y = x W + dropout(x) A^T B^T * scaling, with PEFT's
 * init (A kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)); B zeros) and scaling
 * (alpha / r, or alpha / sqrt(r) with rsLoRA). In memory A is [in, r] and B [r, out] so both products are
 * non-transposed; on disk they are PEFT's `lora_A.weight` [r, in] and `lora_B.weight` [out, r] under
 * `base_model.model.<module>`.
 */
import { join } from "node:path";
import {
  createRng,
  describeValue,
  HippoError,
  isPlainObject,
  readJsonFile,
  writeJsonAtomic,
} from "@hippocrates/core";
import { type HubOptions, resolvePretrained } from "@hippocrates/hub";
import { openSafetensors, writeSafetensors } from "@hippocrates/safetensors";
import * as tf from "@tensorflow/tfjs-core";
import { hfWeightData, loadModel, type SaveDType, saveWeights, transposeMatrix } from "./io.js";
import type { CausalLM } from "./llama.js";
import { LINEAR_MODULES, type LinearModule, linearShape, linearWeightName } from "./weights.js";

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  /** Module names as PEFT's target_modules (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj). */
  targetModules: string[];
  useRslora: boolean;
}

export interface LoraAdapter {
  name: string;
  config: LoraConfig;
  scaling: number;
  /** By base weight name (`model.layers.N.self_attn.q_proj.weight`): A [in, r]. */
  a: Map<string, tf.Variable>;
  /** B [r, out]. */
  b: Map<string, tf.Variable>;
  /** base_model_name_or_path written to adapter_config.json. */
  baseModelNameOrPath: string | null;
}

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";

function resolveTargets(targets: string[] | string, file?: string): LinearModule[] {
  // PEFT's "all-linear" means every linear layer except the output head.
  const list =
    targets === "all-linear" ? [...LINEAR_MODULES] : typeof targets === "string" ? [targets] : targets;
  const out: LinearModule[] = [];
  for (const t of list) {
    if (!(LINEAR_MODULES as readonly string[]).includes(t)) {
      throw new HippoError("INVALID_CONFIG", "unknown LoRA target module", {
        file,
        key: "target_modules",
        expected: `names among ${LINEAR_MODULES.join(", ")} or "all-linear"`,
        got: JSON.stringify(t),
      });
    }
    if (!out.includes(t as LinearModule)) out.push(t as LinearModule);
  }
  if (out.length === 0)
    throw new HippoError("INVALID_CONFIG", "target_modules is empty", { file, key: "target_modules" });
  return out;
}

function checkLoraConfig(c: LoraConfig, file?: string): void {
  if (!Number.isInteger(c.r) || c.r <= 0) {
    throw new HippoError("INVALID_CONFIG", "LoRA rank must be a positive integer", {
      file,
      key: "r",
      got: describeValue(c.r),
    });
  }
  if (typeof c.alpha !== "number" || !Number.isFinite(c.alpha)) {
    throw new HippoError("INVALID_CONFIG", "lora_alpha must be a number", {
      file,
      key: "lora_alpha",
      got: describeValue(c.alpha),
    });
  }
  if (typeof c.dropout !== "number" || !(c.dropout >= 0 && c.dropout < 1)) {
    throw new HippoError("INVALID_CONFIG", "lora_dropout must be in [0, 1)", {
      file,
      key: "lora_dropout",
      got: describeValue(c.dropout),
    });
  }
}

export function loraScaling(c: LoraConfig): number {
  return c.useRslora ? c.alpha / Math.sqrt(c.r) : c.alpha / c.r;
}

export interface AddAdapterOptions {
  /** Adapter name (default "default", as PEFT). */
  name?: string;
  /** Seed of A's init. */
  seed?: number;
  /** Make it the (only) active adapter (default true). */
  activate?: boolean;
  baseModelNameOrPath?: string | null;
}

/** Add a freshly initialised adapter (A kaiming-uniform, B zeros: the model's output is unchanged). */
export function addLoraAdapter(
  model: CausalLM,
  config: Partial<LoraConfig> & { r: number },
  options: AddAdapterOptions = {},
): LoraAdapter {
  const full: LoraConfig = {
    r: config.r,
    alpha: config.alpha ?? config.r,
    dropout: config.dropout ?? 0,
    targetModules: config.targetModules ?? ["q_proj", "v_proj"],
    useRslora: config.useRslora ?? false,
  };
  checkLoraConfig(full);
  const targets = resolveTargets(full.targetModules);
  const rng = createRng(options.seed ?? 0);
  const name = options.name ?? "default";
  const init = (module: LinearModule): { a: Float32Array; b: Float32Array } => {
    const [inF, outF] = linearShape(model.config, module);
    const bound = 1 / Math.sqrt(inF);
    const aHF = new Float32Array(full.r * inF); // PEFT's [r, in] order
    for (let i = 0; i < aHF.length; i++) aHF[i] = (2 * rng.next() - 1) * bound;
    return { a: transposeMatrix(aHF, full.r, inF), b: new Float32Array(full.r * outF) };
  };
  return installAdapter(
    model,
    name,
    full,
    targets,
    init,
    options.activate ?? true,
    options.baseModelNameOrPath ?? null,
  );
}

function installAdapter(
  model: CausalLM,
  name: string,
  config: LoraConfig,
  targets: LinearModule[],
  data: (module: LinearModule, layer: number) => { a: Float32Array; b: Float32Array },
  activate: boolean,
  baseModelNameOrPath: string | null,
): LoraAdapter {
  if (model.adapters.has(name)) {
    throw new HippoError("INVALID_ARGUMENT", "an adapter with this name exists already", { key: name });
  }
  const adapter: LoraAdapter = {
    name,
    config: { ...config, targetModules: targets },
    scaling: loraScaling(config),
    a: new Map(),
    b: new Map(),
    baseModelNameOrPath,
  };
  for (let l = 0; l < model.dims.layers; l++) {
    for (const m of targets) {
      const [inF, outF] = linearShape(model.config, m);
      const { a, b } = data(m, l);
      const w = linearWeightName(l, m);
      adapter.a.set(w, trainableVariable(a, [inF, config.r]));
      adapter.b.set(w, trainableVariable(b, [config.r, outF]));
    }
  }
  model.adapters.set(name, adapter);
  if (activate) model.activeAdapters = [name];
  return adapter;
}

function trainableVariable(data: Float32Array, shape: [number, number]): tf.Variable {
  const t = tf.tensor2d(data, shape);
  const v = tf.variable(t, true);
  t.dispose();
  return v;
}

/** Remove an adapter and free its variables. */
export function deleteAdapter(model: CausalLM, name: string): void {
  const a = model.adapters.get(name);
  if (a === undefined) throw new HippoError("NOT_FOUND", "no such adapter", { key: name });
  for (const v of a.a.values()) v.dispose();
  for (const v of a.b.values()) v.dispose();
  model.adapters.delete(name);
  model.activeAdapters = model.activeAdapters.filter((n) => n !== name);
}

/** Run `f` with every adapter switched off (the base model), restoring the previous state after. */
export function withAdaptersDisabled<T>(model: CausalLM, f: () => T): T {
  const before = model.adaptersEnabled;
  model.adaptersEnabled = false;
  try {
    return f();
  } finally {
    model.adaptersEnabled = before;
  }
}

/** PEFT's key of a LoRA weight: base_model.model.<module path>.lora_A.weight */
export function peftKey(baseWeightName: string, which: "A" | "B"): string {
  return `base_model.model.${baseWeightName.replace(/\.weight$/, "")}.lora_${which}.weight`;
}

/** The adapter_config.json PEFT writes for a LoRA adapter. */
export function peftAdapterConfig(adapter: LoraAdapter): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: adapter.baseModelNameOrPath,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: adapter.config.alpha,
    lora_dropout: adapter.config.dropout,
    modules_to_save: null,
    peft_type: "LORA",
    r: adapter.config.r,
    rank_pattern: {},
    revision: null,
    target_modules: [...adapter.config.targetModules],
    task_type: "CAUSAL_LM",
    use_dora: false,
    use_rslora: adapter.config.useRslora,
  };
}

function getAdapter(model: CausalLM, name: string | undefined): LoraAdapter {
  const n = name ?? model.activeAdapters[0] ?? "default";
  const a = model.adapters.get(n);
  if (a === undefined) throw new HippoError("NOT_FOUND", "no such adapter", { key: n });
  return a;
}

/** Write adapter_config.json + adapter_model.safetensors (float32, PEFT key names and layouts). */
export async function saveAdapter(
  model: CausalLM,
  dir: string,
  options: { name?: string } = {},
): Promise<void> {
  const adapter = getAdapter(model, options.name);
  const entries: [string, { dtype: "F32"; shape: number[]; data: () => Float32Array }][] = [];
  for (const [w, a] of adapter.a) {
    const b = adapter.b.get(w) as tf.Variable;
    const [inF, r] = a.shape as [number, number];
    const outF = b.shape[1] as number;
    entries.push([
      peftKey(w, "A"),
      { dtype: "F32", shape: [r, inF], data: () => transposeMatrix(a.dataSync() as Float32Array, inF, r) },
    ]);
    entries.push([
      peftKey(w, "B"),
      { dtype: "F32", shape: [outF, r], data: () => transposeMatrix(b.dataSync() as Float32Array, r, outF) },
    ]);
  }
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS), entries, { format: "pt" });
  await writeJsonAtomic(join(dir, ADAPTER_CONFIG), peftAdapterConfig(adapter));
}

function parsePeftConfig(
  raw: unknown,
  file: string,
): { config: LoraConfig; targets: LinearModule[]; base: string | null } {
  if (!isPlainObject(raw))
    throw new HippoError("INVALID_CONFIG", "adapter config must be an object", { file });
  if (raw.peft_type !== "LORA") {
    throw new HippoError("UNSUPPORTED", "only LoRA adapters are supported", {
      file,
      key: "peft_type",
      expected: '"LORA"',
      got: describeValue(raw.peft_type),
    });
  }
  for (const [key, bad] of [
    ["fan_in_fan_out", true],
    ["use_dora", true],
  ] as const) {
    if (raw[key] === bad)
      throw new HippoError("UNSUPPORTED", `${key} adapters are not supported`, {
        file,
        key,
        expected: "false",
      });
  }
  if (raw.bias !== undefined && raw.bias !== "none") {
    throw new HippoError("UNSUPPORTED", "LoRA biases are not supported", {
      file,
      key: "bias",
      expected: '"none"',
      got: describeValue(raw.bias),
    });
  }
  for (const key of ["rank_pattern", "alpha_pattern"]) {
    const v = raw[key];
    if (v !== undefined && v !== null && !(isPlainObject(v) && Object.keys(v).length === 0)) {
      throw new HippoError("UNSUPPORTED", "per-module ranks/alphas are not supported", {
        file,
        key,
        expected: "{}",
      });
    }
  }
  const targetsRaw = raw.target_modules;
  if (
    !(
      typeof targetsRaw === "string" ||
      (Array.isArray(targetsRaw) && targetsRaw.every((t) => typeof t === "string"))
    )
  ) {
    throw new HippoError("INVALID_CONFIG", "target_modules must be a list of names", {
      file,
      key: "target_modules",
      got: describeValue(targetsRaw),
    });
  }
  const config: LoraConfig = {
    r: raw.r as number,
    alpha: (raw.lora_alpha ?? 8) as number,
    dropout: (raw.lora_dropout ?? 0) as number,
    targetModules: [],
    useRslora: raw.use_rslora === true,
  };
  checkLoraConfig(config, file);
  const targets = resolveTargets(targetsRaw as string[] | string, file);
  config.targetModules = targets;
  const base = typeof raw.base_model_name_or_path === "string" ? raw.base_model_name_or_path : null;
  return { config, targets, base };
}

export interface LoadAdapterOptions {
  /** Adapter name (default "default", as PEFT). */
  name?: string;
  /** Make it the (only) active adapter (default true). */
  activate?: boolean;
  /** Hub revision when the adapter is named by a Hub id. */
  revision?: string;
  /** Cache, endpoint, token, offline mode and progress for Hub ids (default: the environment). */
  hub?: HubOptions;
}

/** Resolve an adapter (a local folder, or a Hub id through the HF cache) and read its adapter_config.json. */
async function readAdapterConfig(
  nameOrPath: string,
  options: { revision?: string; hub?: HubOptions },
): Promise<{ dir: string; configFile: string; raw: unknown }> {
  const { path: dir } = await resolvePretrained(nameOrPath, "adapter", {
    ...options.hub,
    revision: options.revision,
  });
  const configFile = join(dir, ADAPTER_CONFIG);
  return { dir, configFile, raw: await readJsonFile(configFile) };
}

/**
 * Load a PEFT LoRA adapter onto the model under `name` (default "default") and activate it: a local folder,
 * or a Hub id `org/name[@rev]` fetched through the Hugging Face cache.
 */
export async function loadAdapter(
  model: CausalLM,
  nameOrPath: string,
  options: LoadAdapterOptions = {},
): Promise<LoraAdapter> {
  const { dir, configFile, raw } = await readAdapterConfig(nameOrPath, options);
  const { config, targets, base } = parsePeftConfig(raw, configFile);
  const file = join(dir, ADAPTER_WEIGHTS);
  const reader = await openSafetensors(file);
  try {
    // PEFT saves without the adapter name; some tools keep ".default" in the key: accept both.
    const byKey = new Map<string, string>();
    for (const k of reader.tensors.keys())
      byKey.set(k.replace(/\.lora_([AB])\.[^.]+\.weight$/, ".lora_$1.weight"), k);
    const expected = new Set<string>();
    const data = new Map<string, { a: Float32Array; b: Float32Array }>();
    for (let l = 0; l < model.dims.layers; l++) {
      for (const m of targets) {
        const [inF, outF] = linearShape(model.config, m);
        const w = linearWeightName(l, m);
        const read = async (which: "A" | "B", shape: [number, number]): Promise<Float32Array> => {
          const key = peftKey(w, which);
          expected.add(key);
          const real = byKey.get(key);
          const info = real === undefined ? undefined : reader.tensors.get(real);
          if (real === undefined || info === undefined) {
            throw new HippoError("INVALID_FORMAT", "adapter lacks a LoRA weight", {
              file,
              key,
              expected: `shape [${shape}]`,
              got: "nothing",
            });
          }
          if (info.shape.join(",") !== shape.join(",")) {
            throw new HippoError("INVALID_FORMAT", "LoRA weight has the wrong shape", {
              file,
              key,
              expected: `[${shape}]`,
              got: `[${info.shape}]`,
            });
          }
          return transposeMatrix(await reader.readFloat32(real), shape[0], shape[1]);
        };
        const a = await read("A", [config.r, inF]);
        const b = await read("B", [outF, config.r]);
        data.set(`${l}.${m}`, { a, b });
      }
    }
    for (const k of byKey.keys()) {
      if (!expected.has(k)) {
        throw new HippoError("INVALID_FORMAT", "adapter has a tensor this model/config does not use", {
          file,
          key: byKey.get(k) as string,
          expected: "LoRA weights of the configured target_modules",
        });
      }
    }
    return installAdapter(
      model,
      options.name ?? "default",
      config,
      targets,
      (m, l) => data.get(`${l}.${m}`) as { a: Float32Array; b: Float32Array },
      options.activate ?? true,
      base,
    );
  } finally {
    await reader.close();
  }
}

export interface LoadPeftModelOptions {
  /** Hub revision of the adapter. */
  revision?: string;
  /** Load this base model instead of the adapter's `base_model_name_or_path`. */
  baseModel?: string;
  hub?: HubOptions;
  /** Seed of the model's dropout RNG. */
  seed?: number;
}

/**
 * PEFT's `AutoPeftModelForCausalLM.from_pretrained`: load the base model the adapter names in
 * `base_model_name_or_path` (a Hub id, at the adapter config's `revision` when set, or a path), then the
 * adapter on it, active under "default".
 */
export async function loadPeftModel(
  nameOrPath: string,
  options: LoadPeftModelOptions = {},
): Promise<CausalLM> {
  const { dir, configFile, raw } = await readAdapterConfig(nameOrPath, options);
  const base = options.baseModel ?? (isPlainObject(raw) ? raw.base_model_name_or_path : undefined);
  if (typeof base !== "string" || base === "") {
    throw new HippoError("INVALID_CONFIG", "the adapter does not name its base model; pass baseModel", {
      file: configFile,
      key: "base_model_name_or_path",
      got: describeValue(base),
    });
  }
  const baseRevision =
    options.baseModel === undefined && isPlainObject(raw) && typeof raw.revision === "string"
      ? raw.revision
      : undefined;
  const model = await loadModel(base, { hub: options.hub, revision: baseRevision, seed: options.seed });
  try {
    await loadAdapter(model, dir);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * Merge an adapter into the base weights (W += scaling * A B in the [in, out] layout, i.e. PEFT's
 * W += scaling * B A on [out, in]) and remove it, as PEFT's merge_and_unload.
 */
export function mergeAdapter(model: CausalLM, name?: string): void {
  const adapter = getAdapter(model, name);
  for (const [w, a] of adapter.a) {
    const b = adapter.b.get(w) as tf.Variable;
    const base = model.weights.get(w) as tf.Variable;
    tf.tidy(() =>
      base.assign(tf.add(base, tf.mul(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), adapter.scaling))),
    );
  }
  deleteAdapter(model, adapter.name);
}

/** Merge the adapter into the base and save the result as an HF model folder (sharded safetensors). */
export async function saveMergedModel(
  model: CausalLM,
  dir: string,
  options: { name?: string; maxShardBytes?: number; dtype?: SaveDType } = {},
): Promise<void> {
  const adapter = getAdapter(model, options.name);
  // Merge on the fly, weight by weight, leaving the in-memory model unchanged.
  await saveWeights(model, dir, options.dtype ?? "F32", options.maxShardBytes, (spec) => {
    const a = adapter.a.get(spec.name);
    const b = adapter.b.get(spec.name);
    if (a === undefined || b === undefined) return hfWeightData(model, spec);
    const merged = tf.tidy(() =>
      tf.add(
        model.weights.get(spec.name) as tf.Tensor,
        tf.mul(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), adapter.scaling),
      ),
    );
    try {
      return hfWeightData(model, spec, merged);
    } finally {
      merged.dispose();
    }
  });
}
