/**
 * Padding-free batches (SFT, CPT) and shared-prompt DPO pairs against the padded computations they replace,
 * on the tiny Llama with LoRA (random B so that the adapters matter).
 */
import { createRng, IGNORE_INDEX, type TokenizedExample, type TokenizedPreference } from "@hippocrates/core";
import type { CausalLM } from "@hippocrates/model";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdamW } from "../src/adamw.js";
import { collateLm, packExamples, packPreferences } from "../src/batch.js";
import { accumulateGradients } from "../src/loop.js";
import { batchLogProbs, packedTokenLogProbs, sumByUnit } from "../src/model.js";
import { type DpoItem, dpoLogProbs, dpoTask, lmTask, responseExample } from "../src/tasks.js";
import { loadTinyWithLora, setupBackend } from "./llama-helpers.js";

let model: CausalLM;
beforeAll(async () => {
  await setupBackend();
  model = await loadTinyWithLora(["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"]); // vocab 512
});
afterAll(() => model?.dispose());

const rng = createRng(11);
const ids = (n: number) => Array.from({ length: n }, () => 3 + rng.int(509));

/** SFT examples: a prompt (masked) and a response (labelled), lengths as varied as real instructions. */
function sftExamples(shapes: [number, number][]): TokenizedExample[] {
  return shapes.map(([p, r]) => {
    const inputIds = [1, ...ids(p - 1), ...ids(r - 1), 2];
    return { inputIds, labels: inputIds.map((t, i) => (i < p ? IGNORE_INDEX : t)) };
  });
}

const SHAPES: [number, number][] = [
  [30, 5],
  [12, 9],
  [44, 3],
  [7, 12],
  [25, 6],
];

function pairs(): TokenizedPreference[] {
  return [
    { promptIds: [1, ...ids(20)], chosenIds: [...ids(6), 2], rejectedIds: [...ids(11), 2] },
    { promptIds: [1, ...ids(9)], chosenIds: [...ids(14), 2], rejectedIds: [...ids(3), 2] },
    { promptIds: [1, ...ids(33)], chosenIds: [...ids(2), 2], rejectedIds: [...ids(8), 2] },
    { promptIds: [], chosenIds: [...ids(5), 2], rejectedIds: [...ids(7), 2] }, // no prompt
    { promptIds: [1, ...ids(15)], chosenIds: [2], rejectedIds: [...ids(4), 2] }, // one-token response
  ];
}

const values = (t: tf.Tensor) => {
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
};

/** max |a - b| / max(1, |b|) over the entries. */
function relDiff(a: number[], b: number[]): number {
  expect(a.length).toBe(b.length);
  return Math.max(...a.map((x, i) => Math.abs(x - (b[i] as number)) / Math.max(1, Math.abs(b[i] as number))));
}

describe("padding-free batches", () => {
  it("packExamples: rows hold whole examples end to end, positions restart, the scored tokens are collateLm's", () => {
    const examples = sftExamples(SHAPES);
    const packed = packExamples(examples, 0);
    const padded = collateLm(examples, 0);
    const longest = Math.max(...examples.map((e) => e.inputIds.length));
    // By default the whole micro-batch is one row with no padding (attention stays per example: the model's
    // attention blocks); with rowLength, rows hold at most that many tokens.
    expect(packed.batchSize).toBe(1);
    expect(packed.attentionMask).toBeUndefined();
    const rows = packExamples(examples, 0, { rowLength: longest });
    expect(rows.seqLen).toBeLessThanOrEqual(longest);
    expect(rows.batchSize).toBeGreaterThan(1);
    // Each example's last token predicts nothing and is left out; padding only at row ends.
    expect(packed.numTokens).toBe(examples.reduce((s, e) => s + e.inputIds.length - 1, 0));
    expect(packed.batchSize * packed.seqLen).toBeLessThan(padded.batchSize * padded.seqLen);
    // Same (input token, target) pairs, each counted for its own example.
    const pickedPacked = [...packed.picks].map((slot, i) => [
      packed.pickUnits[i],
      packed.positionIds[slot],
      packed.inputIds[slot],
      packed.pickTargets[i],
    ]);
    const pickedPadded: number[][] = [];
    for (let b = 0; b < padded.batchSize; b++) {
      for (let t = 0; t < padded.seqLen; t++) {
        const y = padded.targets[b * padded.seqLen + t] as number;
        if (y !== IGNORE_INDEX)
          pickedPadded.push([b, t, padded.inputIds[b * padded.seqLen + t] as number, y]);
      }
    }
    const key = (r: (number | undefined)[]) => r.join(",");
    expect(pickedPacked.map(key).sort()).toEqual(pickedPadded.map(key).sort());
    // A row never splits an example: tokens of one segment are contiguous and start at position 0.
    for (let k = 0; k < packed.inputIds.length; k++) {
      const seg = packed.segmentIds[k] as number;
      const first = k % packed.seqLen === 0 || packed.segmentIds[k - 1] !== seg;
      if (seg >= 0 && first) expect(packed.positionIds[k]).toBe(0);
    }
  });

  it("packPreferences: one prompt copy, both responses branch off it with positions continuing the prompt's", () => {
    const pair: TokenizedPreference = {
      promptIds: [10, 11, 12],
      chosenIds: [20, 21],
      rejectedIds: [30, 31, 32],
    };
    const b = packPreferences([pair], 0);
    expect(b.batchSize).toBe(1);
    expect([...b.inputIds]).toEqual([10, 11, 12, 20, 30, 31]); // the responses' last tokens are only targets
    expect([...b.positionIds]).toEqual([0, 1, 2, 3, 3, 4]);
    expect([...b.segmentIds]).toEqual([0, 0, 0, 1, 2, 2]);
    expect([...(b.parentSegmentIds ?? [])]).toEqual([0, 0, 0, 0, 0, 0]);
    // The prompt's last slot (2) predicts the first token of both responses.
    expect([...b.picks]).toEqual([2, 3, 2, 4, 5]);
    expect([...b.pickTargets]).toEqual([20, 21, 30, 31, 32]);
    expect([...b.pickUnits]).toEqual([0, 0, 1, 1, 1]);
    expect(b.units).toBe(2);
  });

  it("a padding-free SFT batch gives each example the log-likelihood of the padded batch (1e-6 relative)", () => {
    // One row (the default) and rows of the longest example, whose ends are padded: both split into attention
    // blocks, padding joining the block before it.
    for (const [maxLength, rowLength] of [
      [undefined, undefined],
      [20, undefined],
      [undefined, Math.max(...SHAPES.map(([p, r]) => p + r))],
    ]) {
      const examples = sftExamples(SHAPES);
      const packed = packExamples(examples, 0, { maxLength, rowLength });
      const a = values(
        tf.tidy(() =>
          sumByUnit(packedTokenLogProbs(model, packed, { training: false }), packed.pickUnits, packed.units),
        ),
      );
      const b = values(
        tf.tidy(() => batchLogProbs(model, collateLm(examples, 0, maxLength), { training: false })),
      );
      // float32: the packed rows' attention sums run over other lengths than the padded rows' (measured ~1e-7)
      expect(relDiff(a, b)).toBeLessThan(1e-6);
      // not vacuous: every example scores something, unless truncation cut its whole response
      const scored = b.filter((x) => Math.abs(x) > 1).length;
      expect(scored).toBe(maxLength === undefined ? examples.length : 2);
      // The task's loss: the sum, both ways.
      const loss = (paddingFree: boolean) =>
        values(
          tf.tidy(
            () =>
              lmTask(model, { padId: 0, maxLength, rowLength, paddingFree }).lossSum(examples, {
                training: false,
              }).loss,
          ),
        )[0] as number;
      expect(Math.abs(loss(true) - loss(false)) / Math.abs(loss(false))).toBeLessThan(1e-6);
    }
  });

  it("shared-prompt DPO log-probs equal prompt + response computed separately (and with truncation)", () => {
    for (const maxLength of [undefined, 24, 12]) {
      const ps = pairs();
      for (const average of [false, true]) {
        const run = (paddingFree: boolean) =>
          tf.tidy(() => {
            const lp = dpoLogProbs(model, ps, { padId: 0, maxLength, average, paddingFree, training: false });
            return tf.concat([lp.chosen, lp.rejected]);
          });
        const a = values(run(true));
        const b = values(run(false));
        expect(relDiff(a, b)).toBeLessThan(1e-6);
      }
    }
  });

  it("shared-prompt DPO gradients equal those of the separate computation", async () => {
    const ps = pairs();
    const items: DpoItem[] = ps.map((p, i) => ({
      ...p,
      referenceChosen: -20 - i,
      referenceRejected: -25 + i,
    }));
    const vars = model.trainableVariables();
    const grads = async (paddingFree: boolean) => {
      const task = dpoTask(model, { padId: 0, beta: 0.5, paddingFree });
      const { grads: g } = await accumulateGradients(task, [items], vars);
      return g.map((t) => values(t));
    };
    const a = await grads(true);
    const b = await grads(false);
    let scale = 0;
    for (const g of b) for (const x of g) scale = Math.max(scale, Math.abs(x));
    expect(scale).toBeGreaterThan(1e-3); // not a vacuous comparison
    a.forEach((g, k) => {
      const h = b[k] as number[];
      g.forEach((x, i) => {
        expect(Math.abs(x - (h[i] as number))).toBeLessThanOrEqual(1e-5 * scale);
      });
    });
  });

  it("training from padding-free batches follows padded training (LoRA, AdamW, 5 steps)", async () => {
    const examples = sftExamples([...SHAPES, [18, 4], [40, 8], [9, 2]]);
    const vars = model.trainableVariables();
    const start = vars.map((v) => v.clone());
    const train = async (paddingFree: boolean) => {
      vars.forEach((v, i) => {
        v.assign(start[i] as tf.Tensor);
      });
      const task = lmTask(model, { padId: 0, paddingFree });
      const opt = createAdamW(vars);
      for (let step = 0; step < 5; step++) {
        const { grads } = await accumulateGradients(task, [examples.slice(0, 4), examples.slice(4)], vars);
        opt.apply(grads, 1e-3);
        for (const g of grads) g.dispose();
      }
      opt.dispose();
      return vars.map((v) => Array.from(v.dataSync()));
    };
    const a = await train(true);
    const b = await train(false);
    // Both runs move the weights by ~5e-3 (5 steps of lr 1e-3); float32 rounding differences of ~1e-7
    // relative in the gradients stay far below that after Adam's normalisation: 1e-5 absolute.
    let moved = 0;
    a.forEach((w, k) => {
      const s = (start[k] as tf.Tensor).dataSync();
      w.forEach((x, i) => {
        moved = Math.max(moved, Math.abs(x - (s[i] as number)));
        expect(Math.abs(x - ((b[k] as number[])[i] as number))).toBeLessThan(1e-5);
      });
    });
    expect(moved).toBeGreaterThan(1e-3);
    vars.forEach((v, i) => {
      v.assign(start[i] as tf.Tensor);
    });
    for (const t of start) t.dispose();
  });

  it("keeps tf.memory().numTensors flat across padding-free SFT and DPO steps (attention blocks, checkpointing)", async () => {
    const items: DpoItem[] = pairs().map((p) => ({ ...p, referenceChosen: -20, referenceRejected: -21 }));
    const examples = sftExamples(SHAPES);
    const vars = model.trainableVariables();
    const dpo = dpoTask(model, { padId: 0, checkpointLayers: true });
    const sft = lmTask(model, { padId: 0, checkpointLayers: true });
    const counts: number[] = [];
    for (let step = 0; step < 4; step++) {
      const a = await accumulateGradients(dpo, [items.slice(0, 3), items.slice(3)], vars);
      const b = await accumulateGradients(sft, [examples.slice(0, 3), examples.slice(3)], vars);
      for (const g of [...a.grads, ...b.grads]) g.dispose();
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts).size).toBe(1);
  });
});

describe("responseExample", () => {
  it("is what the separate path scores (prompt masked)", () => {
    expect(responseExample([5, 6], [7, 8])).toEqual({ inputIds: [5, 6, 7, 8], labels: [-100, -100, 7, 8] });
  });
});
