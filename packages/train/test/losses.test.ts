import { IGNORE_INDEX } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import { collateLm } from "../src/batch.js";
import { crossEntropyMean, dpoLoss, dpoMetrics, sequenceLogProbs, shiftLabels } from "../src/losses.js";
import { lmTask, responseExample } from "../src/tasks.js";
import { createMlpLm } from "./helpers.js";

/** Reference: plain autograd through logSoftmax and a one-hot mask. */
function referenceSeqLogProbs(logits: tf.Tensor3D, targets: Int32Array): tf.Tensor1D {
  const [B, T, V] = logits.shape;
  const mask = tf.tensor2d(
    Array.from(targets, (y) => (y === IGNORE_INDEX ? 0 : 1)),
    [B, T],
  );
  const oh = tf.oneHot(
    tf.tensor2d(
      Array.from(targets, (y) => (y === IGNORE_INDEX ? 0 : y)),
      [B, T],
      "int32",
    ),
    V,
  );
  return tf.sum(tf.mul(tf.sum(tf.mul(tf.logSoftmax(logits), oh), 2), mask), 1) as tf.Tensor1D;
}

describe("sequenceLogProbs / cross-entropy", () => {
  const B = 2;
  const T = 5;
  const V = 7;
  const data = Array.from({ length: B * T * V }, (_, i) => Math.sin(i * 0.37) * 4 + (i % 3));
  const targets = new Int32Array([
    3,
    IGNORE_INDEX,
    6,
    0,
    IGNORE_INDEX,
    1,
    2,
    IGNORE_INDEX,
    IGNORE_INDEX,
    IGNORE_INDEX,
  ]);

  it("values and gradients equal the autograd reference (float32, 1e-5)", async () => {
    const x = tf.tensor3d(data, [B, T, V]);
    const dy = tf.tensor1d([0.7, -1.3]);
    const f = (fn: typeof sequenceLogProbs) => (t: tf.Tensor) =>
      tf.sum(tf.mul(fn(t as tf.Tensor3D, targets), dy));
    const ours = await sequenceLogProbs(x, targets).data();
    const ref = await referenceSeqLogProbs(x, targets).data();
    for (let i = 0; i < B; i++) expect(Math.abs((ours[i] as number) - (ref[i] as number))).toBeLessThan(1e-5);
    const g1 = await tf.grad(f(sequenceLogProbs))(x).data();
    const g2 = await tf
      .grad(f(referenceSeqLogProbs as typeof sequenceLogProbs))(x)
      .data();
    for (let i = 0; i < g1.length; i++)
      expect(Math.abs((g1[i] as number) - (g2[i] as number))).toBeLessThan(1e-5);
    // Masked positions get exactly zero gradient.
    for (let v = 0; v < V; v++) expect(Math.abs(g1[1 * V + v] as number)).toBe(0);
  });

  it("is stable for huge logits (log-softmax via logsumexp)", async () => {
    const x = tf.tensor3d([[[1000, 0, -1000]]]);
    const lp = await sequenceLogProbs(x, new Int32Array([1])).data();
    expect(lp[0]).toBeCloseTo(-1000, 3);
  });

  it("the mean cross-entropy equals the hand-computed value", async () => {
    // One sequence, vocab 3, labels [_, 2, 0]: targets after the HF shift are [2, 0, ignore].
    const logits = tf.tensor3d([
      [
        [1, 2, 3],
        [0, 0, 0],
        [5, 5, 5],
      ],
    ]);
    const targets = shiftLabels([[IGNORE_INDEX, 2, 0]]);
    expect(Array.from(targets)).toEqual([2, 0, IGNORE_INDEX]);
    const lse = (a: number[]) => Math.log(a.reduce((s, v) => s + Math.exp(v), 0));
    const expected = (lse([1, 2, 3]) - 3 + (lse([0, 0, 0]) - 0)) / 2;
    expect((await crossEntropyMean(logits, targets).data())[0]).toBeCloseTo(expected, 5);
  });
});

describe("SFT masking, token by token", () => {
  it("only response tokens are targets, each predicted from the token before it", () => {
    const prompt = [1, 10, 11, 12];
    const response = [20, 21, 2];
    const ex = responseExample(prompt, response);
    expect(ex.labels).toEqual([IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 20, 21, 2]);
    const short = responseExample([1, 10], [30]);
    const batch = collateLm([ex, short], 0);
    // Row 0: positions 0..2 predict prompt tokens -> ignored; position 3 (last prompt token) predicts 20,
    // position 4 predicts 21, position 5 predicts EOS 2, position 6 has nothing to predict.
    expect(Array.from(batch.targets.slice(0, 7))).toEqual([
      IGNORE_INDEX,
      IGNORE_INDEX,
      IGNORE_INDEX,
      20,
      21,
      2,
      IGNORE_INDEX,
    ]);
    // Row 1 is padded: position 1 predicts 30, the rest is padding.
    expect(Array.from(batch.targets.slice(7))).toEqual([
      IGNORE_INDEX,
      30,
      IGNORE_INDEX,
      IGNORE_INDEX,
      IGNORE_INDEX,
      IGNORE_INDEX,
      IGNORE_INDEX,
    ]);
    expect(Array.from(batch.attentionMask ?? [])).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
    expect(batch.numTargets).toBe(4);
  });

  it("the SFT loss does not depend on the logits of prompt positions", async () => {
    const model = createMlpLm(40, 8, 1);
    const task = lmTask(model, { padId: 0 });
    const items = [responseExample([1, 10, 11, 12], [20, 21, 2])];
    const l1 = tf.tidy(() => task.lossSum(items, { training: false }).loss);
    // Changing a prompt token other than the last one changes nothing here (the MLP sees one token per position).
    const l2 = tf.tidy(
      () => task.lossSum([responseExample([1, 33, 11, 12], [20, 21, 2])], { training: false }).loss,
    );
    expect((await l1.data())[0]).toBeCloseTo((await l2.data())[0] as number, 6);
    expect(task.units(items)).toBe(3);
    for (const t of [l1, l2]) t.dispose();
    model.dispose();
  });
});

describe("packed blocks (CPT)", () => {
  it("positions restart per document, cross-document targets are dropped, EOS labels kept", () => {
    const EOS = 2;
    const block = {
      inputIds: [1, 5, 6, EOS, 1, 7, EOS],
      labels: [1, 5, 6, EOS, 1, 7, EOS],
      segmentIds: [0, 0, 0, 0, 1, 1, 1],
    };
    const b = collateLm([block], 0);
    expect(Array.from(b.positionIds ?? [])).toEqual([0, 1, 2, 3, 0, 1, 2]);
    expect(Array.from(b.segmentIds ?? [])).toEqual([0, 0, 0, 0, 1, 1, 1]);
    expect(Array.from(b.targets)).toEqual([5, 6, EOS, IGNORE_INDEX, 7, EOS, IGNORE_INDEX]);
  });
});

describe("DPO losses and metrics (TRL dpo_loss)", () => {
  const pc = [-5, -8];
  const pr = [-7, -6];
  const rc = [-6, -7];
  const rr = [-6, -6];
  // logits = (pc - pr) - (rc - rr) = [2, -1]
  const logits = [2, -1];
  const logSigmoid = (x: number) => -Math.log1p(Math.exp(-x));

  async function run(config: Parameters<typeof dpoLoss>[4]) {
    const out = dpoLoss(tf.tensor1d(pc), tf.tensor1d(pr), tf.tensor1d(rc), tf.tensor1d(rr), config);
    return {
      losses: Array.from(await out.losses.data()),
      c: await out.chosenRewards.data(),
      r: await out.rejectedRewards.data(),
    };
  }

  it("sigmoid, beta 0.1: -logsigmoid(beta * logits)", async () => {
    const { losses } = await run({});
    logits.forEach((z, i) => {
      expect(losses[i]).toBeCloseTo(-logSigmoid(0.1 * z), 6);
    });
    expect(losses[0]).toBeCloseTo(0.5981388693, 6);
  });

  it("sigmoid with label smoothing 0.2 (cDPO)", async () => {
    const { losses } = await run({ beta: 0.5, labelSmoothing: 0.2 });
    logits.forEach((z, i) => {
      expect(losses[i]).toBeCloseTo(-0.8 * logSigmoid(0.5 * z) - 0.2 * logSigmoid(-0.5 * z), 6);
    });
  });

  it("hinge: relu(1 - beta * logits)", async () => {
    const { losses } = await run({ lossType: "hinge" });
    expect(losses[0]).toBeCloseTo(0.8, 6);
    expect(losses[1]).toBeCloseTo(1.1, 6);
  });

  it("ipo: (logits - 1 / (2 beta))^2", async () => {
    const { losses } = await run({ lossType: "ipo" });
    expect(losses[0]).toBeCloseTo(9, 5);
    expect(losses[1]).toBeCloseTo(36, 5);
  });

  it("metrics: rewards = beta (policy - reference), TRL's names", async () => {
    const { c, r } = await run({});
    const m = dpoMetrics({ chosenRewards: c, rejectedRewards: r, policyChosen: pc, policyRejected: pr });
    expect(m["rewards/chosen"]).toBeCloseTo((0.1 + -0.1) / 2, 6);
    expect(m["rewards/rejected"]).toBeCloseTo((-0.1 + 0) / 2, 6);
    expect(m["rewards/accuracies"]).toBe(0.5);
    expect(m["rewards/margins"]).toBeCloseTo((0.2 + -0.1) / 2, 6);
    expect(m["logps/chosen"]).toBe(-6.5);
    expect(m["logps/rejected"]).toBe(-6.5);
  });

  it("gradient of the sigmoid loss w.r.t. the chosen log-prob is -beta * sigmoid(-beta * logits)", async () => {
    const g = tf.grad((x: tf.Tensor) =>
      tf.sum(dpoLoss(x as tf.Tensor1D, tf.tensor1d(pr), tf.tensor1d(rc), tf.tensor1d(rr)).losses),
    )(tf.tensor1d(pc));
    const got = await g.data();
    logits.forEach((z, i) => {
      expect(got[i]).toBeCloseTo(-0.1 / (1 + Math.exp(0.1 * z)), 6);
    });
  });
});
