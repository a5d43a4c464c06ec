/**
 * Gradients of the custom fast-path ops (linear, attention, embedding scatter, tied head) and of gradient
 * checkpointing, against central finite differences of the loss along random directions.
 *
 * float64 is unavailable (wasm is fp32 only), so the check is directional: for a random unit direction u,
 * g.u must match (L(w + eps u) - L(w - eps u)) / (2 eps) with eps = 1e-2. The loss (~6.2) carries ~1e-6 of
 * fp32 rounding, i.e. ~1e-4 of noise in the quotient, and the O(eps^2) truncation is of the same order; the
 * derivatives tested are 1e-2..1, so a relative tolerance of 2e-2 (plus 2e-4 absolute) separates a correct
 * gradient from a wrong one (a transposed or missing term is off by O(1)).
 */

import { createRng } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";
import {
  addLoraAdapter,
  type CausalLM,
  createRandomModel,
  type ForwardOptions,
  loadModel,
} from "../src/index.js";
import { setup, smallLlamaConfig, TINY } from "./helpers.js";

const IDS = [
  [1, 57, 300, 4, 128, 499, 42, 42, 7, 260, 15, 511],
  [1, 33, 210, 5, 77, 301, 9, 33, 33, 400, 2, 2],
];

beforeAll(setup);

/** Extra forward options for every loss evaluation (a test of dropout sets training + a replayed RNG). */
let forwardExtra: () => ForwardOptions = () => ({});

/** Mean next-token cross-entropy, as a trainer computes it from forward logits. */
function loss(m: CausalLM, checkpointLayers = false): tf.Scalar {
  return tf.tidy(() => {
    const { logits } = m.forward(IDS, { checkpointLayers, ...forwardExtra() });
    const V = m.dims.vocab;
    const T = (IDS[0] as number[]).length;
    const inputs = tf.reshape(tf.slice(logits as tf.Tensor3D, [0, 0, 0], [IDS.length, T - 1, V]), [-1, V]);
    const targets = tf.tensor1d(
      IDS.flatMap((r) => r.slice(1)),
      "int32",
    );
    const logp = tf.logSoftmax(inputs);
    return tf.neg(tf.mean(tf.sum(tf.mul(logp, tf.oneHot(targets, V)), -1))) as tf.Scalar;
  });
}

function grads(m: CausalLM, vars: tf.Variable[], checkpointLayers = false): Map<tf.Variable, Float32Array> {
  const { value, grads: g } = tf.variableGrads(() => loss(m, checkpointLayers), vars);
  const out = new Map<tf.Variable, Float32Array>();
  for (const v of vars) {
    const gv = g[v.name];
    expect(gv, `gradient of ${v.name}`).toBeDefined();
    out.set(v, gv?.dataSync() as Float32Array);
  }
  value.dispose();
  tf.dispose(g);
  return out;
}

function lossValue(m: CausalLM): number {
  const l = loss(m);
  const v = l.dataSync()[0] as number;
  l.dispose();
  return v;
}

/** Compare g.u with the central difference along a random unit direction over `vars`. */
function checkDirection(
  m: CausalLM,
  g: Map<tf.Variable, Float32Array>,
  vars: tf.Variable[],
  seed: number,
): void {
  let state = seed * 2654435761;
  const rand = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648 - 0.5;
  };
  // u = unit(unit(g) + unit(random)): a random direction with a component along g, so that the loss moves
  // enough to measure (the tiny model's loss is flat) while a wrong g still shows up through the random part.
  const unit = (ds: Float32Array[]) => {
    const n = Math.sqrt(ds.reduce((s, d) => s + d.reduce((a, x) => a + x * x, 0), 0));
    for (const d of ds) for (let i = 0; i < d.length; i++) (d[i] as number) /= n;
    return ds;
  };
  const rnd = unit(vars.map((v) => Float32Array.from({ length: v.size }, rand)));
  const gu = unit(vars.map((v) => Float32Array.from(g.get(v) as Float32Array)));
  const dirs = unit(rnd.map((r, i) => r.map((x, k) => x + ((gu[i] as Float32Array)[k] as number))));
  let analytic = 0;
  vars.forEach((v, i) => {
    const gv = g.get(v) as Float32Array;
    const d = dirs[i] as Float32Array;
    for (let k = 0; k < d.length; k++) analytic += (gv[k] as number) * (d[k] as number);
  });
  const eps = 1e-2;
  const originals = vars.map((v) => tf.keep(tf.clone(v)));
  const shift = (sign: number) => {
    vars.forEach((v, i) => {
      tf.tidy(() => {
        v.assign(
          tf.add(originals[i] as tf.Tensor, tf.mul(tf.tensor(dirs[i] as Float32Array, v.shape), sign * eps)),
        );
      });
    });
  };
  shift(1);
  const plus = lossValue(m);
  shift(-1);
  const minus = lossValue(m);
  vars.forEach((v, i) => {
    v.assign(originals[i] as tf.Tensor);
  });
  tf.dispose(originals);
  const numeric = (plus - minus) / (2 * eps);
  expect(Math.abs(numeric)).toBeGreaterThan(1e-3); // the direction must actually move the loss
  expect(Math.abs(analytic - numeric), `analytic ${analytic} vs numeric ${numeric}`).toBeLessThanOrEqual(
    2e-2 * Math.max(Math.abs(analytic), Math.abs(numeric)) + 2e-4,
  );
}

function randomizeB(m: CausalLM): void {
  let s = 11;
  for (const b of m.adapters.get("default")?.b.values() ?? []) {
    tf.tidy(() => b.assign(tf.randomNormal(b.shape, 0, 0.1, "float32", s++)));
  }
}

describe("gradients vs finite differences", () => {
  it("LoRA adapters on all linear layers (and checkpointing gives the same gradients)", async () => {
    const m = await loadModel(TINY);
    addLoraAdapter(m, {
      r: 4,
      alpha: 8,
      targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    });
    randomizeB(m);
    const vars = m.trainableVariables();
    expect(vars.length).toBe(28);
    // The first backward passes cache the frozen weights' transposes, once per weight (the checkpointed one
    // also those of layer 0's q/k/v: its nested gradient includes the layer input's).
    grads(m, vars);
    grads(m, vars, true);
    const before = tf.memory().numTensors;
    const g = grads(m, vars);
    expect(tf.memory().numTensors).toBe(before);
    checkDirection(m, g, vars, 1);
    const ad = m.adapters.get("default");
    for (const key of ["model.layers.0.self_attn.k_proj.weight", "model.layers.1.mlp.down_proj.weight"]) {
      checkDirection(m, g, [ad?.a.get(key) as tf.Variable], 2);
      checkDirection(m, g, [ad?.b.get(key) as tf.Variable], 3);
    }
    const gc = grads(m, vars, true);
    expect(tf.memory().numTensors).toBe(before);
    for (const v of vars) {
      const a = g.get(v) as Float32Array;
      const b = gc.get(v) as Float32Array;
      for (let i = 0; i < a.length; i++)
        expect(Math.abs((a[i] as number) - (b[i] as number))).toBeLessThan(1e-6);
    }
    m.dispose();
  });

  it("LoRA dropout: the gradient through the dropped-out input, masks replayed (and with checkpointing)", async () => {
    const m = await loadModel(TINY);
    addLoraAdapter(m, { r: 4, alpha: 8, dropout: 0.3, targetModules: ["v_proj", "up_proj", "down_proj"] });
    randomizeB(m);
    // The same seed for every evaluation: the same dropout masks, so the loss is a smooth function of the weights.
    forwardExtra = () => ({ training: true, rng: createRng(5) });
    try {
      const vars = m.trainableVariables();
      const g = grads(m, vars);
      checkDirection(m, g, vars, 9);
      // Dropout changes the gradient (the masks are in effect), and checkpointing replays the same masks.
      forwardExtra = () => ({});
      const plain = grads(m, vars);
      forwardExtra = () => ({ training: true, rng: createRng(5) });
      const gc = grads(m, vars, true);
      let changed = 0;
      for (const v of vars) {
        const a = g.get(v) as Float32Array;
        const b = gc.get(v) as Float32Array;
        const c = plain.get(v) as Float32Array;
        for (let i = 0; i < a.length; i++) {
          expect(Math.abs((a[i] as number) - (b[i] as number))).toBeLessThan(1e-6);
          changed = Math.max(changed, Math.abs((a[i] as number) - (c[i] as number)));
        }
      }
      expect(changed).toBeGreaterThan(1e-4);
    } finally {
      forwardExtra = () => ({});
      m.dispose();
    }
  });

  it("a frozen weight changed after a backward pass: gradients use its new transpose, not the cached one", async () => {
    const setupModel = async () => {
      const m = await loadModel(TINY);
      addLoraAdapter(m, { r: 4, alpha: 8, targetModules: ["q_proj", "up_proj"] }, { seed: 3 });
      randomizeB(m);
      return m;
    };
    const changed = ["model.layers.0.mlp.down_proj.weight", "lm_head.weight"];
    const scale = (m: CausalLM) => {
      for (const name of changed) {
        const w = m.weights.get(name) as tf.Variable;
        tf.tidy(() => w.assign(tf.mul(w, 1.5)));
      }
    };
    const a = await setupModel();
    const vars = a.trainableVariables();
    grads(a, vars); // caches W^T of every frozen weight on the gradient path
    scale(a); // as mergeAdapter does: assign() gives the variables new data
    const ga = grads(a, vars);
    // The reference runs without the cache (transposes per call): bit-for-bit the same numbers, and no
    // tensor is left behind after the first pass.
    const b = await setupModel();
    b.transposeCacheBytes = 0;
    scale(b);
    const varsB = b.trainableVariables();
    const count = tf.memory().numTensors;
    const gb = grads(b, varsB);
    expect(tf.memory().numTensors).toBe(count);
    vars.forEach((v, k) => {
      const x = ga.get(v) as Float32Array;
      const y = gb.get(varsB[k] as tf.Variable) as Float32Array;
      for (let i = 0; i < x.length; i++) expect(x[i]).toBe(y[i]);
    });
    a.dispose();
    b.dispose();
  });

  it("full fine-tuning: every weight incl. embedding (scatter gradient), norms and lm_head", async () => {
    const m = await loadModel(TINY);
    m.setFullFineTuning(true);
    const vars = m.trainableVariables();
    expect(vars.length).toBe(m.weights.size);
    const before = tf.memory().numTensors;
    const g = grads(m, vars);
    expect(tf.memory().numTensors).toBe(before);
    checkDirection(m, g, vars, 4);
    for (const name of [
      "model.embed_tokens.weight",
      "lm_head.weight",
      "model.layers.0.input_layernorm.weight",
      "model.layers.1.self_attn.o_proj.weight",
      "model.layers.0.self_attn.k_proj.weight",
      "model.norm.weight",
    ]) {
      checkDirection(m, g, [m.weights.get(name) as tf.Variable], 5);
    }
    m.dispose();
  });

  it("tied embeddings (the lm_head gradient flows into the embedding) with GQA and checkpointing", () => {
    const m = createRandomModel(
      smallLlamaConfig({
        vocab_size: 512,
        hidden_size: 48,
        intermediate_size: 64,
        num_attention_heads: 6,
        tie_word_embeddings: true,
        initializer_range: 0.2,
      }),
      { seed: 5 },
    );
    m.setFullFineTuning(true);
    const vars = m.trainableVariables();
    const g = grads(m, vars);
    checkDirection(m, g, [m.weights.get("model.embed_tokens.weight") as tf.Variable], 6);
    checkDirection(m, g, vars, 7);
    const gc = grads(m, vars, true);
    for (const v of vars) {
      const a = g.get(v) as Float32Array;
      const b = gc.get(v) as Float32Array;
      for (let i = 0; i < a.length; i++)
        expect(Math.abs((a[i] as number) - (b[i] as number))).toBeLessThan(1e-5);
    }
    // LoRA on the same tied model: the gradient crosses the frozen tied head (dy E, no transpose).
    m.setFullFineTuning(false);
    addLoraAdapter(m, { r: 2, alpha: 4, targetModules: ["o_proj", "up_proj"] });
    randomizeB(m);
    const loraVars = m.trainableVariables();
    expect(loraVars.length).toBe(8);
    checkDirection(m, grads(m, loraVars), loraVars, 8);
    m.dispose();
  });
});

describe("tokenLogProbs (chunked lm_head + log-softmax)", () => {
  /** Naive path: full logits, log-softmax, pick the targets. */
  function naive(m: CausalLM, targets: number[]): tf.Tensor1D {
    const { logits } = m.forward(IDS);
    const V = m.dims.vocab;
    const logp = tf.reshape(tf.logSoftmax(logits as tf.Tensor3D), [-1, V]);
    const valid = targets.map((t) => (t >= 0 ? 1 : 0));
    const picked = tf.sum(
      tf.mul(
        logp,
        tf.oneHot(
          targets.map((t) => Math.max(t, 0)),
          V,
        ),
      ),
      -1,
    );
    return tf.mul(picked, tf.tensor1d(valid)) as tf.Tensor1D;
  }
  function fused(m: CausalLM, targets: number[]): tf.Tensor1D {
    const { hidden } = m.forward(IDS, { logits: "none", outputHidden: true });
    return m.tokenLogProbs(tf.reshape(hidden as tf.Tensor3D, [-1, m.dims.hidden]), targets);
  }
  const targets = IDS.flatMap((r) => [...r.slice(1), -100]);

  it("equals log-softmax of the full logits, values and gradients (untied and tied, frozen and trainable)", async () => {
    const tiny = await loadModel(TINY);
    const tied = createRandomModel(
      smallLlamaConfig({
        vocab_size: 512,
        hidden_size: 48,
        intermediate_size: 64,
        num_hidden_layers: 1,
        num_attention_heads: 6,
        tie_word_embeddings: true,
      }),
      { seed: 9 },
    );
    for (const m of [tiny, tied]) {
      for (const full of [false, true]) {
        m.setFullFineTuning(full);
        if (!full) {
          addLoraAdapter(m, { r: 2, alpha: 4, targetModules: ["v_proj", "down_proj"] });
          randomizeB(m);
        }
        const vars = m.trainableVariables();
        const a = tf.tidy(() => naive(m, targets).dataSync());
        const b = tf.tidy(() => fused(m, targets).dataSync());
        const before = tf.memory().numTensors; // after the first calls: a frozen tied head caches E^T once
        for (let i = 0; i < a.length; i++)
          expect(Math.abs((a[i] as number) - (b[i] as number))).toBeLessThan(2e-5);
        expect(Math.abs(b[11] as number)).toBe(0); // ignored target
        const gradsOf = (f: () => tf.Tensor1D) => {
          const { value, grads: g } = tf.variableGrads(() => tf.sum(f()) as tf.Scalar, vars);
          const out = vars.map((v) => g[v.name]?.dataSync() as Float32Array);
          tf.dispose([value, ...Object.values(g)]);
          return out;
        };
        gradsOf(() => fused(m, targets)); // caches frozen transposes (lm_head^T for the untied head), once
        const cached = tf.memory().numTensors;
        const ga = gradsOf(() => naive(m, targets));
        const gb = gradsOf(() => fused(m, targets));
        expect(tf.memory().numTensors).toBe(cached);
        ga.forEach((x, k) => {
          const y = gb[k] as Float32Array;
          let scale = 0;
          for (let i = 0; i < x.length; i++) scale = Math.max(scale, Math.abs(x[i] as number));
          for (let i = 0; i < x.length; i++)
            expect(Math.abs((x[i] as number) - (y[i] as number))).toBeLessThanOrEqual(1e-4 * scale + 1e-6);
        });
        // Values leave nothing behind; gradients only the cached transposes, created once.
        expect(cached - before).toBeLessThanOrEqual(m.weights.size);
      }
      m.dispose();
    }
  });
});

describe("registered kernel gradients", () => {
  beforeAll(setup);
  it("Slice: numeric and short begin/size give the same gradient as full arrays (zero-padded dy)", () => {
    const x = tf.tensor2d([
      [1, 2, 3],
      [4, 5, 6],
      [7, 8, 9],
    ]);
    // Weighted sum so each position of the slice has its own gradient value.
    const w = tf.tensor2d([[10, 20, 30]]);
    const full = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.slice(t, [1, 0], [1, 3]), w)))(x);
    const numeric = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.slice(t, 1, 1), w)))(x);
    const short = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.slice(t, [1], [1]), w)))(x);
    const expected = [
      [0, 0, 0],
      [10, 20, 30],
      [0, 0, 0],
    ];
    expect(full.arraySync()).toEqual(expected);
    expect(numeric.arraySync()).toEqual(expected);
    expect(short.arraySync()).toEqual(expected);
    tf.dispose([x, w, full, numeric, short]);
  });
});
