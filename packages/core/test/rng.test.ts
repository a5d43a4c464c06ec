import { describe, expect, it } from "vitest";
import { createRng } from "../src/index.js";

describe("createRng", () => {
  it("is deterministic for a seed and differs across seeds", () => {
    const a = createRng(42);
    const b = createRng(42);
    const c = createRng(43);
    const xs = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c.nextUint32())).not.toEqual(xs);
  });

  it("matches the xoshiro128** reference output for a known state", () => {
    // Reference: the C code at prng.di.unimi.it/xoshiro128starstar.c from s = {1, 2, 3, 4}:
    // next() = rotl(s[1] * 5, 7) * 9 -> first outputs 11520, 0, 5927040, 70819200.
    const r = createRng(0);
    r.setState({ kind: "xoshiro128**", s: [1, 2, 3, 4] });
    expect([r.nextUint32(), r.nextUint32(), r.nextUint32(), r.nextUint32()]).toEqual([
      11520, 0, 5927040, 70819200,
    ]);
  });

  it("restores its state exactly (checkpoint / resume)", () => {
    const r = createRng(7);
    for (let i = 0; i < 10; i++) r.next();
    const saved = JSON.parse(JSON.stringify(r.getState()));
    const after = Array.from({ length: 8 }, () => r.next());
    const r2 = createRng(999);
    r2.setState(saved);
    expect(Array.from({ length: 8 }, () => r2.next())).toEqual(after);
  });

  it("draws uniform integers, floats in [0,1), normals and permutations", () => {
    const r = createRng(1);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60_000; i++) counts[r.int(6)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500); // ~5 sigma
    let sum = 0;
    let sq = 0;
    const n = 50_000;
    for (let i = 0; i < n; i++) {
      const x = r.normal();
      sum += x;
      sq += x * x;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.03);
    expect(Math.abs(sq / n - 1)).toBeLessThan(0.03);
    for (let i = 0; i < 1000; i++) {
      const u = r.next();
      expect(u >= 0 && u < 1).toBe(true);
    }
    const perm = r.shuffle([...Array(50).keys()]);
    expect([...perm].sort((x, y) => x - y)).toEqual([...Array(50).keys()]);
    expect(perm).not.toEqual([...Array(50).keys()]);
    expect(() => r.int(0)).toThrow(RangeError);
  });
});
