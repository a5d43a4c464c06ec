/**
 * The model's ways of doing less work give the numbers of the full computation: the lm_head only on scored
 * rows, and responses that share one copy of their prompt (parent segments).
 */
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { disposeCache } from "../src/cache.js";
import { createRandomModel, loadModel } from "../src/io.js";
import type { CausalLM } from "../src/llama.js";
import { addLoraAdapter, deleteAdapter } from "../src/lora.js";
import { attentionInBlocks } from "../src/ops.js";
import { type AttentionBlock, MASKED, planStep, type StepInputs, TILE_ROWS } from "../src/step.js";
import { maxAbsDiff, setup, smallLlamaConfig, TINY } from "./helpers.js";

let tiny: CausalLM;
beforeAll(async () => {
  await setup();
  tiny = await loadModel(TINY);
});
afterAll(() => tiny?.dispose());

const IDS = [
  [1, 17, 250, 33, 5, 480, 77, 2],
  [1, 9, 9, 300, 41, 12, 3, 60],
];

/** A step planner's dims (one KV head, 2 query heads of 4): masks and blocks depend on the inputs only. */
const PLAN_DIMS = {
  vocab: 8,
  hidden: 8,
  intermediate: 8,
  layers: 1,
  heads: 2,
  kvHeads: 1,
  headDim: 4,
  groups: 2,
  eps: 1e-5,
  slidingWindow: null,
  tied: false,
};
const PLAN_INV_FREQ = new Float32Array([1, 0.1]);
const plannedBlocks = (inputs: StepInputs, B: number, T: number) =>
  planStep(B, T, inputs, undefined, PLAN_DIMS, PLAN_INV_FREQ).blocks;

function hiddenOf(m: CausalLM, ids: number[][]): tf.Tensor2D {
  const { hidden } = m.forward(ids, { logits: "none", outputHidden: true });
  return tf.reshape(hidden as tf.Tensor3D, [-1, m.dims.hidden]);
}

describe("only scored rows reach the lm_head (tokenLogProbs)", () => {
  it("never reads unscored rows: NaN there leaves values and gradients finite and equal", () => {
    for (const full of [false, true]) {
      tiny.setFullFineTuning(full);
      if (!full) {
        addLoraAdapter(tiny, { r: 2, alpha: 4, targetModules: ["v_proj", "up_proj"] }, { name: "probe" });
        for (const b of tiny.adapters.get("probe")?.b.values() ?? [])
          tf.tidy(() => b.assign(tf.randomNormal(b.shape, 0, 0.3, "float32", 2)));
      }
      // LoRA (frozen head: the fused gradient) or every weight (trainable head)
      const vars = tiny.trainableVariables();
      const targets = [
        -100, 250, -100, -100, 480, -100, -100, -100, -100, -100, -100, 300, -100, -100, -100, -100,
      ];
      const nanRows = tf.tensor1d(targets.map((t) => (t < 0 ? Number.NaN : 0)));
      const run = (poison: boolean) =>
        tf.tidy(() => {
          const { value, grads } = tf.variableGrads(() => {
            let h = hiddenOf(tiny, IDS);
            // NaN in every unscored row: a head that read them would spread NaN into its outputs or gradients
            if (poison) h = tf.add(h, tf.reshape(nanRows, [-1, 1]));
            const lp = tiny.tokenLogProbs(h, targets);
            return tf.sum(tf.mul(lp, tf.range(1, targets.length + 1))) as tf.Scalar;
          }, vars);
          return [value, ...Object.values(grads)];
        });
      const clean = run(false).map((t) => Array.from(t.dataSync()));
      const poisoned = run(true).map((t) => Array.from(t.dataSync()));
      for (const g of poisoned) for (const x of g) expect(Number.isFinite(x)).toBe(true);
      poisoned.forEach((g, k) => {
        expect(maxAbsDiff(g, clean[k] as number[])).toBe(0);
      });
      // ... which only holds because the NaN rows are never read: a full-logits head gives NaN here.
      expect(
        Number.isNaN(
          tf.tidy(
            () =>
              tf.sum(tiny.lmHead(tf.add(hiddenOf(tiny, IDS), tf.reshape(nanRows, [-1, 1])))).dataSync()[0],
          ),
        ),
      ).toBe(true);
      if (!full) deleteAdapter(tiny, "probe");
    }
    tiny.setFullFineTuning(false);
  });

  it("explicit rows may repeat: values equal the aligned call, gradients add up over the repeats", () => {
    const m = createRandomModel(
      smallLlamaConfig({ vocab_size: 320, num_hidden_layers: 1, tie_word_embeddings: true }),
      { seed: 4 },
    );
    addLoraAdapter(m, { r: 2, alpha: 4, targetModules: ["q_proj", "down_proj"] });
    for (const b of m.adapters.get("default")?.b.values() ?? [])
      tf.tidy(() => b.assign(tf.randomNormal(b.shape, 0, 0.3, "float32", 2)));
    const vars = m.trainableVariables();
    const ids = [[1, 17, 250, 33, 5, 180, 77, 2]];
    // Row 3 predicts two tokens (as a prompt's last token predicts both responses' first tokens).
    const rows = [3, 5, 3, 6];
    const targets = [5, 77, 40, 2];
    const gradsOf = (f: (h: tf.Tensor2D) => tf.Tensor1D) =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(f(hiddenOf(m, ids))) as tf.Scalar, vars);
        return [value, ...vars.map((v) => grads[v.name] as tf.Tensor)];
      });
    const withRows = gradsOf((h) => m.tokenLogProbs(h, targets, rows));
    // The same sum as two aligned calls (each row at most once per call).
    const aligned = gradsOf((h) => {
      const first = [-100, -100, -100, 5, -100, 77, 2, -100];
      const second = [-100, -100, -100, 40, -100, -100, -100, -100];
      return tf.reshape(tf.add(tf.sum(m.tokenLogProbs(h, first)), tf.sum(m.tokenLogProbs(h, second))), [1]);
    });
    withRows.forEach((t, k) => {
      const a = t.dataSync();
      const b = (aligned[k] as tf.Tensor).dataSync();
      let scale = 0;
      for (const x of b) scale = Math.max(scale, Math.abs(x));
      expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-5 * scale + 1e-7);
    });
    expect(Math.abs(withRows[0]?.dataSync()[0] as number)).toBeGreaterThan(1);
    tf.dispose([...withRows, ...aligned]);
    expect(() => m.tokenLogProbs(tf.zeros([8, 32]), [1, 2], [0])).toThrow(/rows/);
    m.dispose();
  });
});

describe("parent segments (one prompt copy shared by its responses)", () => {
  it("each response's hidden states equal a separate forward of prompt + response", () => {
    const prompt = [1, 17, 250, 33, 5];
    const chosen = [480, 77, 2];
    const rejected = [300, 41, 12, 3];
    const other = [9, 9, 60, 7]; // a second document packed in the same row
    const row = [...prompt, ...chosen, ...rejected, ...other];
    const seg = [
      ...prompt.map(() => 0),
      ...chosen.map(() => 1),
      ...rejected.map(() => 2),
      ...other.map(() => 3),
    ];
    const parent = [
      ...prompt.map(() => 0),
      ...chosen.map(() => 0),
      ...rejected.map(() => 0),
      ...other.map(() => 3),
    ];
    const pos = [
      ...prompt.map((_, i) => i),
      ...chosen.map((_, i) => prompt.length + i),
      ...rejected.map((_, i) => prompt.length + i),
      ...other.map((_, i) => i),
    ];
    for (const explicit of [true, false]) {
      const { hidden } = tiny.forward([row], {
        segmentIds: [seg],
        parentSegmentIds: [parent],
        positionIds: explicit ? [pos] : undefined, // default positions continue the parent's
        logits: "none",
        outputHidden: true,
      });
      const h = (hidden as tf.Tensor3D).dataSync();
      const E = tiny.dims.hidden;
      const part = (from: number, n: number) => Array.from(h.subarray(from * E, (from + n) * E));
      const alone = (ids: number[]) => Array.from(tf.tidy(() => hiddenOf(tiny, [ids]).dataSync()));
      const p = prompt.length;
      const c = chosen.length;
      const r = rejected.length;
      const sepChosen = alone([...prompt, ...chosen]);
      const sepRejected = alone([...prompt, ...rejected]);
      expect(maxAbsDiff(part(0, p), sepChosen.slice(0, p * E))).toBeLessThan(2e-5);
      expect(maxAbsDiff(part(p, c), sepChosen.slice(p * E))).toBeLessThan(2e-5);
      expect(maxAbsDiff(part(p + c, r), sepRejected.slice(p * E))).toBeLessThan(2e-5);
      expect(maxAbsDiff(part(p + c + r, other.length), alone(other))).toBeLessThan(2e-5);
      // Without the parent link, the responses would not see the prompt: different numbers.
      const { hidden: unlinked } = tiny.forward([row], {
        segmentIds: [seg],
        positionIds: [pos],
        logits: "none",
        outputHidden: true,
      });
      const u = (unlinked as tf.Tensor3D).dataSync();
      expect(maxAbsDiff(Array.from(u.subarray(p * E, (p + c) * E)), sepChosen.slice(p * E))).toBeGreaterThan(
        1e-3,
      );
      tf.dispose([hidden as tf.Tensor, unlinked as tf.Tensor]);
    }
  });
});

describe("attention blocks (packed rows attend within each example, sum(l^2) instead of T^2)", () => {
  const spans = (inputs: StepInputs, B: number, T: number) =>
    plannedBlocks(inputs, B, T)?.map((row) => row.map((b) => [b.start, b.end]));

  it("splits a row where nothing after looks back; parents, padding and single examples", () => {
    // three documents end to end
    expect(spans({ segmentIds: [[0, 0, 0, 1, 1, 2, 2, 2]] }, 1, 8)).toEqual([
      [
        [0, 3],
        [3, 5],
        [5, 8],
      ],
    ]);
    // a prompt (0) with two responses (1, 2) that see it is one block; a second document after it another
    expect(
      spans({ segmentIds: [[0, 0, 1, 1, 2, 3, 3]], parentSegmentIds: [[0, 0, 0, 0, 0, 3, 3]] }, 1, 7),
    ).toEqual([
      [
        [0, 5],
        [5, 7],
      ],
    ]);
    // padding at a row's end joins the block before it; each row its own blocks
    expect(
      spans(
        {
          segmentIds: [
            [0, 0, 1, 1, -1],
            [0, 1, 1, 1, 1],
          ],
          attentionMask: [
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1],
          ],
        },
        2,
        5,
      ),
    ).toEqual([
      [
        [0, 2],
        [2, 5],
      ],
      [
        [0, 1],
        [1, 5],
      ],
    ]);
    // one example per row (a padded batch): nothing to split, the full path runs
    expect(spans({ attentionMask: [[1, 1, 1, 0]] }, 1, 4)).toBeUndefined();
  });

  it("a packed row's hidden states and LoRA gradients equal each document's own forward", () => {
    addLoraAdapter(
      tiny,
      { r: 2, alpha: 4, targetModules: ["q_proj", "k_proj", "v_proj", "o_proj"] },
      { name: "blk" },
    );
    for (const b of tiny.adapters.get("blk")?.b.values() ?? [])
      tf.tidy(() => b.assign(tf.randomNormal(b.shape, 0, 0.3, "float32", 3)));
    const docs = [
      [1, 17, 250, 33, 5, 480],
      [1, 9, 300],
      [1, 41, 12, 3, 60, 7, 77, 2, 140],
    ];
    const row = docs.flat();
    const seg = docs.flatMap((d, i) => d.map(() => i));
    const E = tiny.dims.hidden;
    // A fixed linear read-out of the hidden states, so every position's gradient counts.
    const w = tf.randomNormal([row.length, E], 0, 1, "float32", 5);
    const vars = tiny.trainableVariables();
    const packed = tf.variableGrads(() => {
      const { hidden } = tiny.forward([row], { segmentIds: [seg], logits: "none", outputHidden: true });
      return tf.sum(tf.mul(tf.reshape(hidden as tf.Tensor3D, [-1, E]), w)) as tf.Scalar;
    }, vars);
    let offset = 0;
    const separate = tf.variableGrads(() => {
      const losses = docs.map((d) => {
        const { hidden } = tiny.forward([d], { logits: "none", outputHidden: true });
        const part = tf.slice(w, [offset, 0], [d.length, E]);
        offset += d.length;
        return tf.sum(tf.mul(tf.reshape(hidden as tf.Tensor3D, [-1, E]), part));
      });
      return losses.reduce((a, b) => tf.add(a, b)) as tf.Scalar;
    }, vars);
    // The hidden states themselves, position by position (the row goes through attention blocks; see above).
    const segmented = Array.from(
      tf.tidy(() => {
        const { hidden } = tiny.forward([row], { segmentIds: [seg], logits: "none", outputHidden: true });
        return (hidden as tf.Tensor3D).dataSync();
      }),
    );
    const alone = docs.flatMap((d) => Array.from(tf.tidy(() => hiddenOf(tiny, [d]).dataSync())));
    expect(maxAbsDiff(segmented, alone)).toBeLessThan(2e-5); // as the parent-segment test above
    // float32: the same sums in another grouping (measured ~1e-7 relative)
    const value = (t: tf.Tensor) => t.dataSync()[0] as number;
    expect(Math.abs(value(packed.value) - value(separate.value))).toBeLessThan(
      1e-5 * Math.abs(value(separate.value)),
    );
    let scale = 0;
    for (const g of Object.values(separate.grads))
      scale = Math.max(scale, tf.max(tf.abs(g)).dataSync()[0] as number);
    expect(scale).toBeGreaterThan(1e-3); // not vacuous
    for (const [name, g] of Object.entries(packed.grads)) {
      const h = separate.grads[name] as tf.Tensor;
      expect(maxAbsDiff(Array.from(g.dataSync()), Array.from(h.dataSync()))).toBeLessThan(1e-5 * scale);
    }
    tf.dispose([
      w,
      packed.value,
      separate.value,
      ...Object.values(packed.grads),
      ...Object.values(separate.grads),
    ]);
    deleteAdapter(tiny, "blk");
  });
});

describe("hiddenRows (only the scored slots leave the last layer)", () => {
  const rows = [13, 2, 7, 8]; // any order, across both batch rows of IDS (T = 8)

  it("gives the same bits as those rows of the full forward, padded or packed, hidden and logits", () => {
    const options = [
      {},
      {
        attentionMask: [
          [1, 1, 1, 1, 1, 1, 1, 1],
          [1, 1, 1, 1, 1, 1, 0, 0],
        ],
      },
      {
        segmentIds: [
          [0, 0, 0, 1, 1, 1, 1, 1],
          [0, 0, 1, 1, 1, 1, 1, 1],
        ],
      }, // attention blocks
    ];
    for (const o of options) {
      const full = tiny.forward(IDS, { ...o, logits: "all", outputHidden: true });
      const part = tiny.forward(IDS, { ...o, logits: "all", outputHidden: true, hiddenRows: rows });
      expect(part.hidden?.shape).toEqual([1, rows.length, tiny.dims.hidden]);
      expect(part.logits?.shape).toEqual([1, rows.length, tiny.dims.vocab]);
      const pick = (t: tf.Tensor3D | null, width: number) =>
        Array.from(tf.tidy(() => tf.gather(tf.reshape(t as tf.Tensor3D, [-1, width]), rows).dataSync()));
      expect(Array.from(part.hidden?.dataSync() ?? [])).toEqual(pick(full.hidden, tiny.dims.hidden));
      expect(Array.from(part.logits?.dataSync() ?? [])).toEqual(pick(full.logits, tiny.dims.vocab));
      tf.dispose([full.hidden, full.logits, part.hidden, part.logits] as tf.Tensor[]);
    }
  });

  it("runs the last layer's o_proj and MLP on those rows only (the trace of its attention output)", () => {
    const shapes: Record<string, number[]> = {};
    const last = tiny.dims.layers - 1;
    const out = tiny.forward(IDS, {
      logits: "none",
      outputHidden: true,
      hiddenRows: rows,
      trace: (name, t) => {
        shapes[name] = t.shape;
      },
    });
    tf.dispose(out.hidden as tf.Tensor);
    expect(shapes[`layers.${last}.attn_out`]).toEqual([1, rows.length, tiny.dims.hidden]);
    expect(shapes[`layers.${last}.k_all`]?.[2]).toBe(8); // keys of every slot
    expect(shapes[`layers.${last - 1}.attn_out`]).toEqual([2, 8, tiny.dims.hidden]);
  });

  it("gives the gradients of a loss on those rows, with and without gradient checkpointing", () => {
    addLoraAdapter(
      tiny,
      { r: 2, alpha: 4, targetModules: ["q_proj", "o_proj", "down_proj"] },
      { name: "hr" },
    );
    for (const b of tiny.adapters.get("hr")?.b.values() ?? [])
      tf.tidy(() => b.assign(tf.randomNormal(b.shape, 0, 0.3, "float32", 4)));
    const vars = tiny.trainableVariables();
    const targets = [250, 33, 480, 300];
    const weights = tf.tensor1d([1, 2, 3, 4]);
    for (const checkpointLayers of [false, true]) {
      const whole = tf.variableGrads(() => {
        const h = hiddenOf(tiny, IDS);
        return tf.sum(tf.mul(tiny.tokenLogProbs(h, targets, rows), weights)) as tf.Scalar;
      }, vars);
      const trimmed = tf.variableGrads(() => {
        const { hidden } = tiny.forward(IDS, {
          logits: "none",
          outputHidden: true,
          hiddenRows: rows,
          checkpointLayers,
        });
        const h = tf.reshape(hidden as tf.Tensor3D, [rows.length, -1]) as tf.Tensor2D;
        return tf.sum(tf.mul(tiny.tokenLogProbs(h, targets, [0, 1, 2, 3]), weights)) as tf.Scalar;
      }, vars);
      expect(trimmed.value.dataSync()[0]).toBe(whole.value.dataSync()[0]);
      let scale = 0;
      for (const g of Object.values(whole.grads))
        scale = Math.max(scale, tf.max(tf.abs(g)).dataSync()[0] as number);
      expect(scale).toBeGreaterThan(1e-3); // not vacuous
      // float32: the backward sums the same terms in another grouping (the unpicked rows contribute exact zeros)
      for (const [name, g] of Object.entries(trimmed.grads)) {
        const ref = whole.grads[name] as tf.Tensor;
        expect(maxAbsDiff(Array.from(g.dataSync()), Array.from(ref.dataSync()))).toBeLessThan(1e-6 * scale);
      }
      tf.dispose([
        whole.value,
        trimmed.value,
        ...Object.values(whole.grads),
        ...Object.values(trimmed.grads),
      ]);
    }
    weights.dispose();
    deleteAdapter(tiny, "hr");
  });

  it("refuses repeated or out-of-range slots, an empty list and logits 'last', naming the key", () => {
    const bad: [number[], string][] = [
      [[1, 1], "hiddenRows[1]"],
      [[16], "hiddenRows[0]"],
      [[0.5], "hiddenRows[0]"],
      [[], "hiddenRows"],
    ];
    for (const [r, key] of bad) {
      expect(() => tiny.forward(IDS, { logits: "none", outputHidden: true, hiddenRows: r })).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT", location: expect.objectContaining({ key }) }),
      );
    }
    expect(() => tiny.forward(IDS, { logits: "last", hiddenRows: [1] })).toThrow(/hiddenRows/);
  });
});

describe("causal tiles (a long block's queries read only the keys up to their own)", () => {
  const tiles = (inputs: StepInputs, B: number, T: number) =>
    plannedBlocks(inputs, B, T)?.map((row) => row.map((b) => [b.start, b.end, b.keyStart, b.keyEnd]));

  it("splits blocks of at least 2 x TILE_ROWS queries, keys up to the tile's last, 16-aligned", () => {
    expect(TILE_ROWS).toBe(256);
    // one causal row of 600: keys end at 256, 512 and the row's end (608 capped at 600)
    expect(tiles({}, 1, 600)).toEqual([
      [
        [0, 256, 0, 256],
        [256, 512, 0, 512],
        [512, 600, 0, 600],
      ],
    ]);
    // a packed row: a short document stays one tile; the long one's tiles start their keys at its start
    const seg = [...new Array<number>(30).fill(0), ...new Array<number>(600).fill(1)];
    expect(tiles({ segmentIds: [seg] }, 1, 630)).toEqual([
      [
        [0, 30, 0, 30],
        [30, 286, 30, 286],
        [286, 542, 30, 542],
        [542, 630, 30, 630],
      ],
    ]);
    // padding at the end: the last tile's keys stop after its last real query's, rounded up to 16 (590 -> 592)
    const mask = [Array.from({ length: 600 }, (_, t) => (t < 590 ? 1 : 0))];
    expect(tiles({ attentionMask: mask }, 1, 600)?.[0]?.[2]).toEqual([512, 600, 0, 592]);
    // below 2 x TILE_ROWS a single causal row has one tile: the untiled path runs
    expect(tiles({}, 1, 511)).toBeUndefined();
  });

  it("gives the untiled attention's bits and its gradients (overlapping keys' dK and dV added up)", () => {
    const T = 600;
    const [G, d] = [2, 4];
    const causal = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) causal[i * T + j] = j <= i ? 0 : MASKED;
    const planned = planStep(1, T, {}, undefined, PLAN_DIMS, PLAN_INV_FREQ);
    const tiled = (planned.blocks?.[0] ?? []) as AttentionBlock[];
    expect(tiled.length).toBe(3);
    const whole: AttentionBlock[] = [{ start: 0, end: T, keyStart: 0, keyEnd: T, mask: 0 }];
    const q = tf.randomNormal([1, T * G * d], 0, 1, "float32", 11) as tf.Tensor2D;
    const kT = tf.randomNormal([1, d * T], 0, 1, "float32", 12) as tf.Tensor2D;
    const v = tf.randomNormal([1, T * d], 0, 1, "float32", 13) as tf.Tensor2D;
    const w = tf.randomNormal([1, T * G * d], 0, 1, "float32", 14);
    const attnDims = { batch: 1, kvHeads: 1, groups: G, T, S: T, d };
    const run = (blocks: AttentionBlock[], masks: tf.Tensor2D[]) => {
      const out = Array.from(
        tf.tidy(() => attentionInBlocks(q, kT, v, masks, [blocks], attnDims).dataSync()),
      );
      const grads = tf.tidy(() =>
        tf
          .grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
            tf.sum(
              tf.mul(
                attentionInBlocks(
                  a as tf.Tensor2D,
                  b as tf.Tensor2D,
                  c as tf.Tensor2D,
                  masks,
                  [blocks],
                  attnDims,
                ),
                w,
              ),
            ),
          )([q, kT, v])
          .map((g) => Array.from(g.dataSync())),
      );
      return { out, grads };
    };
    const tileMasks = planned.masks.map((m, i) => {
      const t = tiled[i] as AttentionBlock;
      return tf.tensor2d(m, [t.end - t.start, t.keyEnd - t.keyStart]);
    });
    const wholeMask = [tf.tensor2d(causal, [T, T])];
    const a = run(tiled, tileMasks);
    const b = run(whole, wholeMask);
    expect(a.out).toEqual(b.out); // bit for bit (a tile's keys end at a multiple of 16)
    // float32: dK and dV of a key sum the same terms grouped by tile (measured ~1e-7 relative)
    a.grads.forEach((g, k) => {
      const ref = b.grads[k] as number[];
      expect(maxAbsDiff(g, ref)).toBeLessThan(1e-5 * Math.max(1e-3, ...ref.map(Math.abs)));
    });
    tf.dispose([q, kT, v, w, ...tileMasks, ...wholeMask]);
  });

  it("a tiled forward of a long row gives the same bits as running it in two steps on the KV cache (untiled)", () => {
    const ids = [Array.from({ length: 600 }, (_, t) => (t * 37 + 11) % 500)];
    const full = Array.from(
      tf.tidy(() =>
        (tiny.forward(ids, { logits: "none", outputHidden: true }).hidden as tf.Tensor3D).dataSync(),
      ),
    );
    const cache = tiny.createCache(1);
    const first = tiny.forward([ids[0]?.slice(0, 256) as number[]], {
      cache,
      logits: "none",
      outputHidden: true,
    });
    const rest = tiny.forward([ids[0]?.slice(256) as number[]], {
      cache,
      logits: "none",
      outputHidden: true,
    });
    const stepped = [...(first.hidden?.dataSync() ?? []), ...(rest.hidden?.dataSync() ?? [])];
    tf.dispose([first.hidden, rest.hidden] as tf.Tensor[]);
    disposeCache(cache);
    expect(stepped).toEqual(full);
  });
});
