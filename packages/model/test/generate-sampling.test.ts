import { createRng } from "@hippocrates/core";
import { describe, expect, it } from "vitest";
import { argmax, selectToken, softmax, topKFilter, topPFilter, warpLogits } from "../src/sampling.js";

const logitsOf = (p: number[]) => Float32Array.from(p, Math.log);
const kept = (x: Float32Array) => [...x.keys()].filter((i) => x[i] !== -Infinity);

describe("sampling warpers (HF semantics)", () => {
  // probabilities by index: 0.15, 0.5, 0.05, 0.3 -> ascending 0.05 (2), 0.15 (0), 0.3 (3), 0.5 (1);
  // cumulative ascending: 0.05, 0.20, 0.50, 1.00. HF removes entries with cumulative <= 1 - p.
  const p = [0.15, 0.5, 0.05, 0.3];

  it("top-p keeps the smallest most-likely set reaching p (hand-computed)", () => {
    expect(kept(topPFilter(logitsOf(p), 0.8))).toEqual([1, 3]); // 1 - p = 0.2: removes 0.05 and 0.15 (cum 0.20)
    expect(kept(topPFilter(logitsOf(p), 0.85))).toEqual([0, 1, 3]); // 1 - p = 0.15: removes 0.05 only
    expect(kept(topPFilter(logitsOf(p), 0.4))).toEqual([1]); // 1 - p = 0.6: removes up to cum 0.50
    expect(kept(topPFilter(logitsOf(p), 0.01))).toEqual([1]); // the most likely token always stays
    expect(kept(topPFilter(logitsOf(p), 1))).toEqual([0, 1, 2, 3]);
  });

  it("top-k keeps k tokens (ties with the k-th kept) and min 1", () => {
    expect(kept(topKFilter(logitsOf(p), 2))).toEqual([1, 3]);
    expect(kept(topKFilter(Float32Array.from([1, 3, 3, 2]), 1))).toEqual([1, 2]);
    expect(kept(topKFilter(logitsOf(p), 10))).toEqual([0, 1, 2, 3]);
  });

  it("temperature, then top-k, then top-p; sampling frequencies follow the renormalized distribution", () => {
    const w = warpLogits(logitsOf(p), { temperature: 1, topK: 3, topP: 0.7 });
    // top-k 3 keeps 0.15, 0.5, 0.3 (renormalized 0.158, 0.526, 0.316); top-p 0.7 then drops 0.158 (cum <= 0.3).
    expect(kept(w)).toEqual([1, 3]);
    const probs = softmax(w);
    expect(probs[1]).toBeCloseTo(0.625, 6);
    expect(probs[3]).toBeCloseTo(0.375, 6);
    const rng = createRng(5);
    const counts = [0, 0, 0, 0];
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const k = selectToken(logitsOf(p), { temperature: 1, topK: 3, topP: 0.7 }, rng);
      counts[k] = (counts[k] as number) + 1;
    }
    expect(counts[0]).toBe(0);
    expect(counts[2]).toBe(0);
    // binomial sd = sqrt(0.625 * 0.375 / 20000) = 0.0034: 0.015 is > 4 sd
    expect(Math.abs((counts[1] as number) / n - 0.625)).toBeLessThan(0.015);
    // Temperature 0.5 squares the odds: 0.5^2 : 0.3^2 over the kept pair.
    const cold = softmax(warpLogits(logitsOf(p), { temperature: 0.5, topK: 2 }));
    expect(cold[1]).toBeCloseTo(0.25 / (0.25 + 0.09), 6);
  });

  it("greedy is the first argmax", () => {
    expect(argmax([1, 5, 5, 2])).toBe(1);
    expect(selectToken(Float32Array.from([0, 2, 1]), {}, createRng(1))).toBe(1);
    expect(selectToken(Float32Array.from([0, 2, 1]), { temperature: 0 }, createRng(1))).toBe(1);
  });
});
