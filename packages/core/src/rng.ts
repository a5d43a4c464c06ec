/**
 * A small seeded RNG (xoshiro128**, seeded through splitmix32) whose whole state is four uint32 words, so
 * training checkpoints can save and restore it exactly. Not the Python-compatible Mersenne Twister: that one
 * lives in @hippocrates/eval, where byte-identical few-shot draws need it.
 */

export interface RngState {
  kind: "xoshiro128**";
  s: [number, number, number, number];
}

export interface Rng {
  /** Uniform float in [0, 1) with 32 bits of randomness. */
  next(): number;
  /** Uniform uint32. */
  nextUint32(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Standard normal (Box-Muller). */
  normal(): number;
  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[];
  /** A new independent generator derived from this one (consumes one draw). */
  fork(): Rng;
  getState(): RngState;
  setState(state: RngState): void;
}

function splitmix32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

export function createRng(seed: number): Rng {
  const sm = splitmix32(Math.floor(seed) ^ Math.floor(seed / 0x100000000));
  const s: [number, number, number, number] = [sm(), sm(), sm(), sm()];
  if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1;
  let spare: number | undefined;

  const nextUint32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] = (s[2] ^ s[0]) >>> 0;
    s[3] = (s[3] ^ s[1]) >>> 0;
    s[1] = (s[1] ^ s[2]) >>> 0;
    s[0] = (s[0] ^ s[3]) >>> 0;
    s[2] = (s[2] ^ t) >>> 0;
    s[3] = rotl(s[3], 11);
    return result;
  };
  const next = () => nextUint32() / 0x100000000;
  const int = (n: number): number => {
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`rng.int(n) needs a positive integer, got ${n}`);
    // Rejection sampling keeps the draw unbiased.
    const limit = 0x100000000 - (0x100000000 % n);
    let x = nextUint32();
    while (x >= limit) x = nextUint32();
    return x % n;
  };
  const rng: Rng = {
    next,
    nextUint32,
    int,
    normal() {
      if (spare !== undefined) {
        const v = spare;
        spare = undefined;
        return v;
      }
      let u = 0;
      while (u === 0) u = next();
      const v = next();
      const r = Math.sqrt(-2 * Math.log(u));
      spare = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    },
    shuffle<T>(items: T[]): T[] {
      for (let i = items.length - 1; i > 0; i--) {
        const j = int(i + 1);
        const tmp = items[i] as T;
        items[i] = items[j] as T;
        items[j] = tmp;
      }
      return items;
    },
    fork() {
      return createRng(nextUint32() * 0x100000 + (nextUint32() & 0xfffff));
    },
    getState() {
      return { kind: "xoshiro128**", s: [s[0], s[1], s[2], s[3]] };
    },
    setState(state: RngState) {
      if (state.kind !== "xoshiro128**" || state.s.length !== 4)
        throw new RangeError("not a xoshiro128** state");
      for (let i = 0; i < 4; i++) s[i] = (state.s[i] as number) >>> 0;
      spare = undefined;
    },
  };
  return rng;
}
