/**
 * Models on disk: load an HF folder (config.json + single or sharded safetensors, F32/F16/BF16), create a
 * seeded random model with HF's init, and save in HF's layout. Loading goes tensor by tensor (shard by shard)
 * so peak memory stays near the model's own float32 size.
 */
import { join } from "node:path";
import { backendInfo, memoryLimitBytes } from "@hippocrates/backend";
import { createRng, HippoError, type ModelConfig, writeJsonAtomic } from "@hippocrates/core";
import { type HubOptions, resolvePretrained } from "@hippocrates/hub";
import {
  type CheckpointReader,
  type DType,
  openCheckpoint,
  writeShardedSafetensors,
} from "@hippocrates/safetensors";
import * as tf from "@tensorflow/tfjs-core";
import { parseModelConfig, readModelConfig } from "./config.js";
import { buildCausalLM, type CausalLM } from "./llama.js";
import { parameterCount, type WeightSpec, weightSpecs } from "./weights.js";

/** Transpose a row-major [rows, cols] matrix (blocked, to stay cache friendly on large weights). */
export function transposeMatrix(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = src[base + c] as number;
      }
    }
  }
  return out;
}

/** Bytes of the model's weights in float32, the format they take in memory. */
export function estimateModelBytes(config: ModelConfig): number {
  return parameterCount(config) * 4;
}

function checkFitsBackend(config: ModelConfig, where: string): void {
  const info = backendInfo();
  const isWasm = info !== null ? info.name === "wasm" : tf.getBackend() === "wasm";
  const limit = info !== null ? memoryLimitBytes(info) : isWasm ? 4294901760 : null;
  if (!isWasm || limit === null) return;
  const need = estimateModelBytes(config);
  if (need > limit) {
    const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
    throw new HippoError(
      "OUT_OF_MEMORY",
      "the model's float32 weights do not fit the WebAssembly backend's 32-bit heap (activations need more on top); " +
        "use the tfjs-node backend (install @tensorflow/tfjs-node) for models of this size",
      {
        file: where,
        expected: `at most ${gib(limit)}`,
        got: `${gib(need)} for ${parameterCount(config).toLocaleString("en-US")} parameters`,
      },
    );
  }
}

/** Tensors that may sit in a checkpoint without being weights of the model. */
function isIgnorable(name: string, config: ModelConfig): boolean {
  if (name.endsWith(".rotary_emb.inv_freq")) return true; // a buffer some older saves include
  return name === "lm_head.weight" && config.tie_word_embeddings; // tied: HF ignores the copy
}

export interface LoadOptions {
  /** Compute dtype; only float32 is supported (bf16/f16 checkpoints are widened exactly). */
  dtype?: "float32";
  /** Seed of the model's dropout RNG. */
  seed?: number;
  /** Hub revision (branch, tag, `refs/pr/N`, commit) when the model is named by a Hub id. */
  revision?: string;
  /** Cache, endpoint, token, offline mode and download progress for a Hub id (default: the environment). */
  hub?: HubOptions;
}

/**
 * Load an HF model: a local folder (config.json + model.safetensors or sharded safetensors), or a Hub id
 * `org/name[@rev]` fetched through the Hugging Face cache (see @hippocrates/hub's resolvePretrained).
 */
export async function loadModel(nameOrPath: string, options: LoadOptions = {}): Promise<CausalLM> {
  if (options.dtype !== undefined && options.dtype !== "float32") {
    throw new HippoError("UNSUPPORTED", "only float32 compute is supported", {
      key: "dtype",
      got: String(options.dtype),
    });
  }
  const { path: dir } = await resolvePretrained(nameOrPath, "model", {
    ...options.hub,
    revision: options.revision,
  });
  const configPath = join(dir, "config.json");
  const config = await readModelConfig(configPath);
  checkFitsBackend(config, dir);
  const specs = new Map(weightSpecs(config).map((s) => [s.name, s]));
  const reader = await openCheckpoint(dir);
  const weights = new Map<string, tf.Variable>();
  try {
    checkInventory(reader, specs, config);
    // Shard by shard, tensor by tensor: each buffer is dropped once its variable exists.
    for (const file of reader.files) {
      for (const [name, info] of reader.tensors) {
        if (info.file !== file || isIgnorable(name, config)) continue;
        const spec = specs.get(name) as WeightSpec;
        if (!["F32", "F16", "BF16"].includes(info.dtype)) {
          throw new HippoError("UNSUPPORTED", "weights must be F32, F16 or BF16", {
            file: join(reader.dir, file),
            key: name,
            expected: "F32 | F16 | BF16",
            got: info.dtype,
          });
        }
        let data = await reader.readFloat32(name);
        if (spec.linear) data = transposeMatrix(data, spec.hfShape[0] as number, spec.hfShape[1] as number);
        weights.set(name, makeVariable(data, spec.shape));
      }
    }
  } catch (e) {
    for (const w of weights.values()) w.dispose();
    throw e;
  } finally {
    await reader.close();
  }
  return buildCausalLM(config, weights, options.seed ?? 0);
}

function makeVariable(data: Float32Array, shape: number[]): tf.Variable {
  const t = tf.tensor(data, shape, "float32");
  const v = tf.variable(t, false);
  t.dispose();
  return v;
}

function checkInventory(reader: CheckpointReader, specs: Map<string, WeightSpec>, config: ModelConfig): void {
  const where =
    reader.index !== undefined ? join(reader.dir, reader.index) : join(reader.dir, reader.files[0] ?? "");
  for (const [name, spec] of specs) {
    const info = reader.tensors.get(name);
    if (info === undefined) {
      throw new HippoError("INVALID_FORMAT", "checkpoint lacks a weight of the model", {
        file: where,
        key: name,
        expected: `a tensor of shape [${spec.hfShape}]`,
        got: "nothing",
      });
    }
    if (info.shape.join(",") !== spec.hfShape.join(",")) {
      throw new HippoError("INVALID_FORMAT", "weight has the wrong shape for config.json", {
        file: join(reader.dir, info.file),
        key: name,
        expected: `[${spec.hfShape}]`,
        got: `[${info.shape}]`,
      });
    }
  }
  for (const name of reader.tensors.keys()) {
    if (!specs.has(name) && !isIgnorable(name, config)) {
      throw new HippoError("INVALID_FORMAT", "checkpoint has a tensor the model does not use", {
        file: join(reader.dir, reader.tensors.get(name)?.file ?? ""),
        key: name,
        expected: "only weights of the configured architecture",
      });
    }
  }
}

export interface RandomModelOptions {
  seed?: number;
}

/**
 * A model with HF's `_init_weights`: linear and embedding weights ~ normal(0, initializer_range = 0.02),
 * the padding token's embedding row zero, norms ones. Seeded by core's createRng.
 */
export function createRandomModel(
  configInput: ModelConfig | Record<string, unknown>,
  options: RandomModelOptions = {},
): CausalLM {
  const config = parseModelConfig(configInput);
  checkFitsBackend(config, "createRandomModel");
  const rng = createRng(options.seed ?? 0);
  const std = typeof config.initializer_range === "number" ? config.initializer_range : 0.02;
  const weights = new Map<string, tf.Variable>();
  for (const spec of weightSpecs(config)) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    if (spec.kind === "norm") data.fill(1);
    else {
      // Drawn in HF's [out, in] order so the same seed gives the same matrix whatever the memory layout.
      for (let i = 0; i < size; i++) data[i] = rng.normal() * std;
    }
    if (spec.kind === "embedding" && typeof config.pad_token_id === "number") {
      const pad = config.pad_token_id;
      const h = config.hidden_size;
      if (pad >= 0 && pad < config.vocab_size) data.fill(0, pad * h, (pad + 1) * h);
    }
    const mem = spec.linear
      ? transposeMatrix(data, spec.hfShape[0] as number, spec.hfShape[1] as number)
      : data;
    weights.set(spec.name, makeVariable(mem, spec.shape));
  }
  return buildCausalLM(config, weights, options.seed ?? 0);
}

export type SaveDType = "F32" | "BF16" | "F16";

export interface SaveOptions {
  /** Shard size limit in bytes (default 5 GB, as HF). */
  maxShardBytes?: number;
  /** On-disk dtype (default F32). BF16/F16 round to nearest even. */
  dtype?: SaveDType;
}

const TORCH_DTYPE: Record<SaveDType, string> = { F32: "float32", BF16: "bfloat16", F16: "float16" };

/** HF [out, in] float32 data of one weight, read back from the device. */
export function hfWeightData(
  model: CausalLM,
  spec: WeightSpec,
  w: tf.Tensor = model.weights.get(spec.name) as tf.Tensor,
): Float32Array {
  const data = w.dataSync() as Float32Array;
  return spec.linear
    ? transposeMatrix(data, spec.shape[0] as number, spec.shape[1] as number)
    : new Float32Array(data);
}

/**
 * Save as an HF folder: config.json + model.safetensors (or shards + index), weights back in [out, in].
 * Each file is written atomically; tensors are converted one at a time while the shard is written.
 */
export async function saveModel(model: CausalLM, dir: string, options: SaveOptions = {}): Promise<void> {
  const dtype = options.dtype ?? "F32";
  if (!(dtype in TORCH_DTYPE)) {
    throw new HippoError("INVALID_ARGUMENT", "unsupported save dtype", {
      key: "dtype",
      expected: "F32 | BF16 | F16",
      got: String(dtype),
    });
  }
  await saveWeights(model, dir, dtype, options.maxShardBytes, (spec) => hfWeightData(model, spec));
}

/** Shared by saveModel and the LoRA merge: `data(spec)` yields each weight in HF layout. */
export async function saveWeights(
  model: CausalLM,
  dir: string,
  dtype: SaveDType,
  maxShardBytes: number | undefined,
  data: (spec: WeightSpec) => Float32Array,
): Promise<void> {
  const specs = weightSpecs(model.config);
  function* entries(): Generator<[string, { dtype: DType; shape: number[]; data: () => Float32Array }]> {
    for (const spec of specs) yield [spec.name, { dtype, shape: spec.hfShape, data: () => data(spec) }];
  }
  await writeShardedSafetensors(dir, entries(), {
    maxShardBytes,
    metadata: { format: "pt" },
  });
  await writeJsonAtomic(join(dir, "config.json"), { ...model.config, torch_dtype: TORCH_DTYPE[dtype] });
}
