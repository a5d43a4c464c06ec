import { describe, expect, it } from "vitest";
import { learningRateAt, validateSchedule } from "../src/schedule.js";

describe("learning-rate schedules (HF semantics)", () => {
  it("cosine with warmup equals its closed form at every step", () => {
    const lr = 1e-4;
    const warmup = 3;
    const total = 20;
    for (let s = 0; s <= total; s++) {
      // Closed form: s < W: lr * s / W;  else lr * 0.5 * (1 + cos(pi * (s - W) / (N - W)))
      const expected =
        s < warmup
          ? (lr * s) / warmup
          : lr * 0.5 * (1 + Math.cos((Math.PI * (s - warmup)) / (total - warmup)));
      expect(learningRateAt({ kind: "cosine", lr, warmupSteps: warmup, totalSteps: total }, s)).toBeCloseTo(
        expected,
        15,
      );
    }
    // HF: the first update of a warmed-up run uses lr 0, the last step of the decay reaches 0.
    expect(learningRateAt({ kind: "cosine", lr, warmupSteps: warmup, totalSteps: total }, 0)).toBe(0);
    expect(learningRateAt({ kind: "cosine", lr, warmupSteps: warmup, totalSteps: total }, total)).toBeCloseTo(
      0,
      20,
    );
  });

  it("cosine with a min lr ratio floors at ratio * lr", () => {
    const cfg = { kind: "cosine" as const, lr: 2e-4, warmupSteps: 0, totalSteps: 10, minLrRatio: 0.1 };
    for (let s = 0; s <= 10; s++) {
      const cos = 0.5 * (1 + Math.cos((Math.PI * s) / 10));
      expect(learningRateAt(cfg, s)).toBeCloseTo(2e-4 * (cos * 0.9 + 0.1), 15);
    }
  });

  it("constant with warmup and linear decay", () => {
    for (let s = 0; s < 10; s++) {
      expect(learningRateAt({ kind: "constant", lr: 1, warmupSteps: 4, totalSteps: 10 }, s)).toBe(
        s < 4 ? s / 4 : 1,
      );
      expect(learningRateAt({ kind: "linear", lr: 1, warmupSteps: 2, totalSteps: 10 }, s)).toBeCloseTo(
        s < 2 ? s / 2 : (10 - s) / 8,
        15,
      );
    }
  });

  it("rejects bad settings with the key named", () => {
    expect(() => validateSchedule({ kind: "cosine", lr: -1, warmupSteps: 0, totalSteps: 1 })).toThrow(
      /schedule\.lr/,
    );
    expect(() => validateSchedule({ kind: "poly" as never, lr: 1, warmupSteps: 0, totalSteps: 1 })).toThrow(
      /schedule\.kind/,
    );
  });
});
