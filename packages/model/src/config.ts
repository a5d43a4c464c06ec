/**
 * HF `config.json` -> `ModelConfig`, checked key by key, plus the derived numbers the model needs
 * (head_dim, KV groups, RoPE inverse frequencies). Semantics follow transformers' LlamaConfig /
 * MistralConfig and `modeling_rope_utils.py`.
 */
import { describeValue, HippoError, isPlainObject, type ModelConfig, readJsonFile } from "@hippocrates/core";

const SUPPORTED_TYPES = ["llama", "mistral"] as const;

function need<T>(
  raw: Record<string, unknown>,
  key: string,
  file: string | undefined,
  check: (v: unknown) => v is T,
  expected: string,
): T {
  const v = raw[key];
  if (v === undefined)
    throw new HippoError("INVALID_CONFIG", "missing required key", { file, key, expected });
  if (!check(v))
    throw new HippoError("INVALID_CONFIG", "wrong type or value", {
      file,
      key,
      expected,
      got: describeValue(v),
    });
  return v;
}

/** `fallback` when the key is absent or null (transformers' default), else checked as `need` checks it. */
function optional<T>(
  raw: Record<string, unknown>,
  key: string,
  file: string | undefined,
  check: (v: unknown) => v is T,
  expected: string,
  fallback: T,
): T {
  return raw[key] === undefined || raw[key] === null ? fallback : need(raw, key, file, check, expected);
}

const isPosInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v > 0;
const isPosNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v > 0;
const isBool = (v: unknown): v is boolean => typeof v === "boolean";
const isString = (v: unknown): v is string => typeof v === "string";
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/**
 * Validate a parsed config.json. `file` names the file in errors. Unknown extra keys are kept (saving writes
 * them back). Throws HippoError(INVALID_CONFIG) naming the key, with expected vs got.
 */
export function parseModelConfig(raw: unknown, file?: string): ModelConfig {
  if (!isPlainObject(raw)) {
    throw new HippoError("INVALID_CONFIG", "config must be a JSON object", { file, got: describeValue(raw) });
  }
  const modelType = need(raw, "model_type", file, isString, `one of ${SUPPORTED_TYPES.join(", ")}`);
  if (!(SUPPORTED_TYPES as readonly string[]).includes(modelType)) {
    throw new HippoError("UNSUPPORTED", "unsupported model_type", {
      file,
      key: "model_type",
      expected: SUPPORTED_TYPES.join(" | "),
      got: JSON.stringify(modelType),
    });
  }
  const hidden = need(raw, "hidden_size", file, isPosInt, "positive integer");
  const heads = need(raw, "num_attention_heads", file, isPosInt, "positive integer");
  const kvHeads = optional(raw, "num_key_value_heads", file, isPosInt, "positive integer", heads);
  if (heads % kvHeads !== 0) {
    throw new HippoError("INVALID_CONFIG", "num_attention_heads must be a multiple of num_key_value_heads", {
      file,
      key: "num_key_value_heads",
      expected: `a divisor of ${heads}`,
      got: String(kvHeads),
    });
  }
  const headDimDefault = Math.floor(hidden / heads);
  const headDim = optional(raw, "head_dim", file, isPosInt, "positive integer", headDimDefault);
  if (headDim % 2 !== 0) {
    throw new HippoError("INVALID_CONFIG", "head_dim must be even for RoPE", {
      file,
      key: "head_dim",
      got: String(headDim),
    });
  }
  const act = optional(raw, "hidden_act", file, isString, "string", "silu");
  if (act !== "silu") {
    throw new HippoError("UNSUPPORTED", "only the silu activation is implemented", {
      file,
      key: "hidden_act",
      expected: '"silu"',
      got: JSON.stringify(act),
    });
  }
  for (const key of ["attention_bias", "mlp_bias"]) {
    if (optional(raw, key, file, isBool, "boolean", false)) {
      throw new HippoError("UNSUPPORTED", "biases in linear layers are not implemented", {
        file,
        key,
        expected: "false",
        got: "true",
      });
    }
  }
  // transformers >= 4.5x moves rope_theta/rope_scaling into `rope_parameters`; accept both spellings.
  const ropeParams = isPlainObject(raw.rope_parameters) ? raw.rope_parameters : undefined;
  const ropeTheta =
    raw.rope_theta !== undefined
      ? need(raw, "rope_theta", file, isPosNum, "positive number")
      : ropeParams?.rope_theta !== undefined
        ? need(ropeParams, "rope_theta", file, isPosNum, "positive number")
        : 10000;
  let ropeScaling = raw.rope_scaling ?? null;
  if (ropeScaling === null && ropeParams !== undefined) {
    const kind = ropeParams.rope_type ?? ropeParams.type ?? "default";
    ropeScaling = kind === "default" ? null : ropeParams;
  }
  if (ropeScaling !== null && !isPlainObject(ropeScaling)) {
    throw new HippoError("INVALID_CONFIG", "wrong type", {
      file,
      key: "rope_scaling",
      expected: "object or null",
      got: describeValue(ropeScaling),
    });
  }
  const slidingWindow = optional<number | null>(
    raw,
    "sliding_window",
    file,
    isPosInt as (v: unknown) => v is number,
    "positive integer or null",
    null,
  );

  const config: ModelConfig = {
    ...raw,
    model_type: modelType as "llama" | "mistral",
    vocab_size: need(raw, "vocab_size", file, isPosInt, "positive integer"),
    hidden_size: hidden,
    intermediate_size: need(raw, "intermediate_size", file, isPosInt, "positive integer"),
    num_hidden_layers: need(raw, "num_hidden_layers", file, isPosInt, "positive integer"),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    hidden_act: "silu",
    max_position_embeddings: optional(
      raw,
      "max_position_embeddings",
      file,
      isPosInt,
      "positive integer",
      2048,
    ),
    rms_norm_eps: optional(raw, "rms_norm_eps", file, isPosNum, "positive number", 1e-6),
    rope_theta: ropeTheta,
    rope_scaling: ropeScaling as ModelConfig["rope_scaling"],
    sliding_window: modelType === "mistral" ? slidingWindow : null,
    tie_word_embeddings: optional(raw, "tie_word_embeddings", file, isBool, "boolean", false),
  };
  // Validate the rope_scaling block now so a bad config fails at load, not at the first forward.
  ropeInvFreq(config, file);
  for (const key of ["bos_token_id", "pad_token_id"])
    optional(raw, key, file, isNumber, "integer or null", 0);
  return config;
}

export async function readModelConfig(path: string): Promise<ModelConfig> {
  return parseModelConfig(await readJsonFile(path), path);
}

/** The numbers the forward pass uses, derived once from the config. */
export interface Dims {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Query heads per KV head (GQA). */
  groups: number;
  eps: number;
  slidingWindow: number | null;
  tied: boolean;
}

export function dimsOf(config: ModelConfig): Dims {
  const headDim = config.head_dim ?? Math.floor(config.hidden_size / config.num_attention_heads);
  return {
    vocab: config.vocab_size,
    hidden: config.hidden_size,
    intermediate: config.intermediate_size,
    layers: config.num_hidden_layers,
    heads: config.num_attention_heads,
    kvHeads: config.num_key_value_heads,
    headDim,
    groups: config.num_attention_heads / config.num_key_value_heads,
    eps: config.rms_norm_eps,
    slidingWindow: config.model_type === "mistral" ? (config.sliding_window ?? null) : null,
    tied: config.tie_word_embeddings,
  };
}

const f32 = Math.fround;

/**
 * RoPE inverse frequencies [head_dim / 2] as transformers computes them in float32
 * (`_compute_default_rope_parameters`, `_compute_linear_scaling_rope_parameters`, `_compute_llama3_parameters`).
 * Each step is rounded to float32 as the torch ops do.
 */
export function ropeInvFreq(config: ModelConfig, file?: string): Float32Array {
  const dim = config.head_dim ?? Math.floor(config.hidden_size / config.num_attention_heads);
  const base = config.rope_theta;
  const half = dim / 2;
  const inv = new Float32Array(half);
  // torch: 1.0 / (base ** (arange(0, dim, 2).float() / dim))
  for (let i = 0; i < half; i++) inv[i] = f32(1 / f32(base ** f32((2 * i) / dim)));
  const scaling = config.rope_scaling;
  if (scaling === null || scaling === undefined) return inv;
  const kind = scaling.rope_type ?? scaling.type ?? "default";
  const num = (key: string): number => {
    const v = (scaling as Record<string, unknown>)[key];
    if (!isPosNum(v)) {
      throw new HippoError("INVALID_CONFIG", `rope_scaling of type ${kind} needs ${key}`, {
        file,
        key: `rope_scaling.${key}`,
        expected: "positive number",
        got: describeValue(v),
      });
    }
    return v;
  };
  if (kind === "default") return inv;
  if (kind === "linear") {
    const factor = num("factor");
    for (let i = 0; i < half; i++) inv[i] = f32((inv[i] as number) / factor);
    return inv;
  }
  if (kind === "llama3") {
    const factor = num("factor");
    const lowFreqFactor = num("low_freq_factor");
    const highFreqFactor = num("high_freq_factor");
    const oldContextLen = num("original_max_position_embeddings");
    const lowFreqWavelen = oldContextLen / lowFreqFactor;
    const highFreqWavelen = oldContextLen / highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i] as number;
      const wavelen = f32((2 * Math.PI) / f);
      // Long wavelengths (low frequencies) are divided by factor; short ones kept; the band between is smoothed.
      let out = wavelen > lowFreqWavelen ? f32(f / factor) : f;
      const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
      if (isMedium) {
        const smooth = f32((f32(oldContextLen / wavelen) - lowFreqFactor) / (highFreqFactor - lowFreqFactor));
        out = f32(f32(f32((1 - smooth) * out) / factor) + f32(smooth * out));
      }
      inv[i] = out;
    }
    return inv;
  }
  throw new HippoError("UNSUPPORTED", "unsupported rope_scaling type", {
    file,
    key: "rope_scaling.rope_type",
    expected: "default | linear | llama3",
    got: JSON.stringify(kind),
  });
}

/**
 * cos/sin tables [positions.length, head_dim] in HF's layout: emb = cat(freqs, freqs), freqs = pos * inv_freq
 * in float32, then cos/sin of the float32 angle.
 */
export function ropeTables(
  invFreq: Float32Array,
  positions: ArrayLike<number>,
): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const dim = 2 * half;
  const cos = new Float32Array(positions.length * dim);
  const sin = new Float32Array(positions.length * dim);
  for (let p = 0; p < positions.length; p++) {
    const pos = positions[p] as number;
    for (let i = 0; i < half; i++) {
      const angle = f32(pos * (invFreq[i] as number));
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * dim + i] = c;
      cos[p * dim + half + i] = c;
      sin[p * dim + i] = s;
      sin[p * dim + half + i] = s;
    }
  }
  return { cos, sin };
}
