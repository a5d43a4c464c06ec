import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { PyRandom } from "../src/pyrandom.js";

// Values printed by CPython (test/fixtures/make_python_random.py). Exact equality: the port is integer
// arithmetic plus one exactly-rounded division, so any difference is a bug, not rounding.
const fx = JSON.parse(readFileSync(new URL("./fixtures/python_random.json", import.meta.url), "utf8"));

describe("PyRandom matches CPython's random", () => {
  it("random() after seed(42)", () => {
    const r = new PyRandom(42);
    expect(Array.from({ length: 10 }, () => r.random())).toEqual(fx.random_10);
  });

  it("getrandbits of 32, 64, 100 and 1 bits", () => {
    const r = new PyRandom(42);
    expect(Array.from({ length: 5 }, () => Number(r.getrandbits(32)))).toEqual(fx.getrandbits_32);
    expect(Array.from({ length: 3 }, () => r.getrandbits(64).toString())).toEqual(fx.getrandbits_64);
    expect(Array.from({ length: 3 }, () => r.getrandbits(100).toString())).toEqual(fx.getrandbits_100);
    expect(Array.from({ length: 8 }, () => Number(r.getrandbits(1)))).toEqual(fx.getrandbits_1);
  });

  it("shuffle of range(20) and of 1273 items", () => {
    let r = new PyRandom(42);
    const a = Array.from({ length: 20 }, (_, i) => i);
    r.shuffle(a);
    expect(a).toEqual(fx.shuffle_20);
    r = new PyRandom(42);
    const b = Array.from({ length: 1273 }, (_, i) => i);
    r.shuffle(b);
    expect(b).toEqual(fx.shuffle_1273);
  });

  it("sample (set and pool branches), randrange, choice", () => {
    const r = new PyRandom(42);
    const range = (n: number) => Array.from({ length: n }, (_, i) => i);
    expect(r.sample(range(1000), 5)).toEqual(fx.sample_1000_5);
    expect(r.sample(range(1000), 6)).toEqual(fx.sample_1000_6);
    expect(r.sample(["a", "b", "c", "d", "e", "f", "g"], 4)).toEqual(fx.sample_small_list);
    expect(r.sample(range(80), 6)).toEqual(fx.sample_80_6);
    expect(r.sample(range(86), 6)).toEqual(fx.sample_86_6);
    expect(Array.from({ length: 5 }, () => r.randrange(10, 20))).toEqual(fx.randrange_10_20);
    expect(Array.from({ length: 5 }, () => r.choice([..."abcdefghij"]))).toEqual(fx.choice);
    expect(Array.from({ length: 3 }, () => r.randrange(2 ** 40))).toEqual(fx.randbelow_big);
  });

  it("the v0.3 protocol stream: shuffle, then per-doc samples; state afterwards", () => {
    const r = new PyRandom();
    r.seed(42);
    const docs = Array.from({ length: 1273 }, (_, i) => i);
    r.shuffle(docs);
    const train = Array.from({ length: 10178 }, (_, i) => i);
    expect([0, 1, 2].map(() => r.sample(train, 5))).toEqual(fx.protocol_shots);
    const tests = Array.from({ length: 1000 }, (_, i) => i);
    expect([0, 1, 2].map(() => r.sample(tests, 6))).toEqual(fx.protocol_test_shots);
    expect(r.random()).toBe(fx.after_ops_random);
    expect(r.getState()).toEqual(fx.state_after_ops);
    const copy = new PyRandom(7);
    copy.setState(r.getState());
    expect(copy.random()).toBe(r.random());
  });

  it("other seeds: 0, multi-word, negative", () => {
    expect(new PyRandom(0).random()).toBe(fx.seed_0);
    expect(new PyRandom(2n ** 64n + 5n).random()).toBe(fx.seed_2_64_plus_5);
    expect(new PyRandom(-42).random()).toBe(fx.seed_minus_42);
  });

  it("rejects bad arguments", () => {
    const r = new PyRandom(1);
    expect(() => r.sample([1, 2, 3], 4)).toThrow(/sample larger/);
    expect(() => r.seed(1.5)).toThrow(/integer/);
    expect(() => r.randrange(5, 5)).toThrow(/empty range/);
  });
});
