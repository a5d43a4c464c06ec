/**
 * CPython's `random.Random`, bit for bit: the MT19937 generator (`_randommodule.c`) and the Python-level
 * algorithms of `random.py` (3.8-3.11) that lm-evaluation-harness v0.3 relies on: `seed(int)`, `random()`,
 * `getrandbits(k)`, `_randbelow` (the getrandbits rejection loop), `shuffle`, `sample` (both the pool and the
 * set branch, chosen by the same size rule), `randrange` and `choice`. Reproducing the authors' prompts byte
 * for byte needs this exact stream; `@hippocrates/core`'s xoshiro RNG is a different generator.
 */
import { HippoError } from "@hippocrates/core";

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

/** The state `getstate()` returns, minus the gauss slot: 624 words and the position. */
export interface PyRandomState {
  mt: number[];
  index: number;
}

export class PyRandom {
  private readonly mt = new Uint32Array(N);
  private index = N + 1;

  constructor(seed?: number | bigint) {
    this.seed(seed ?? 0);
  }

  /** `random.seed(n)` for an int: the key is the 32-bit words of |n|, least significant first. */
  seed(n: number | bigint): void {
    if (typeof n === "number" && !Number.isSafeInteger(n)) {
      throw new HippoError("INVALID_ARGUMENT", "seed must be an integer", { key: "seed", got: String(n) });
    }
    let a = BigInt(n);
    if (a < 0n) a = -a;
    const key: number[] = [];
    while (a > 0n) {
      key.push(Number(a & 0xffffffffn));
      a >>= 32n;
    }
    if (key.length === 0) key.push(0);
    this.initByArray(key);
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] as number;
      const x = (prev ^ (prev >>> 30)) >>> 0;
      // 1812433253 * x mod 2^32, split to stay within float precision.
      mt[i] = ((((x & 0xffff0000) >>> 16) * 1812433253) << 16) + (x & 0x0000ffff) * 1812433253 + i;
    }
    this.index = N;
  }

  private initByArray(key: number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1] as number;
      const x = (prev ^ (prev >>> 30)) >>> 0;
      const mul = ((((x & 0xffff0000) >>> 16) * 1664525) << 16) + (x & 0x0000ffff) * 1664525;
      mt[i] = (((mt[i] as number) ^ mul) >>> 0) + (key[j] as number) + j;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1] as number;
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1] as number;
      const x = (prev ^ (prev >>> 30)) >>> 0;
      const mul = ((((x & 0xffff0000) >>> 16) * 1566083941) << 16) + (x & 0x0000ffff) * 1566083941;
      mt[i] = (((mt[i] as number) ^ mul) >>> 0) - i;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1] as number;
        i = 1;
      }
    }
    mt[0] = 0x80000000;
    this.index = N;
  }

  /** One 32-bit output of MT19937 (`genrand_uint32`). */
  nextUint32(): number {
    const mt = this.mt;
    if (this.index >= N) {
      let kk = 0;
      for (; kk < N - M; kk++) {
        const y = ((mt[kk] as number) & UPPER_MASK) | ((mt[kk + 1] as number) & LOWER_MASK);
        mt[kk] = (mt[kk + M] as number) ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      }
      for (; kk < N - 1; kk++) {
        const y = ((mt[kk] as number) & UPPER_MASK) | ((mt[kk + 1] as number) & LOWER_MASK);
        mt[kk] = (mt[kk + (M - N)] as number) ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      }
      const y = ((mt[N - 1] as number) & UPPER_MASK) | ((mt[0] as number) & LOWER_MASK);
      mt[N - 1] = (mt[M - 1] as number) ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      this.index = 0;
    }
    let y = mt[this.index++] as number;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** `random()`: 53 bits from two outputs, (a*2^26 + b) / 2^53. */
  random(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** `getrandbits(k)` for k <= 32 as a number (the fast path `_randbelow` uses). */
  getrandbits32(k: number): number {
    if (k < 0 || k > 32 || !Number.isInteger(k)) {
      throw new HippoError("INVALID_ARGUMENT", "getrandbits32 takes 0..32 bits", { got: String(k) });
    }
    if (k === 0) return 0;
    return this.nextUint32() >>> (32 - k);
  }

  /** `getrandbits(k)` for any k >= 0: 32-bit words least significant first, the last one shifted. */
  getrandbits(k: number): bigint {
    if (k < 0 || !Number.isInteger(k)) {
      throw new HippoError("INVALID_ARGUMENT", "number of bits must be a non-negative integer", {
        got: String(k),
      });
    }
    if (k <= 32) return BigInt(this.getrandbits32(k));
    let result = 0n;
    let shift = 0n;
    for (let left = k; left > 0; left -= 32) {
      let r = this.nextUint32();
      if (left < 32) r >>>= 32 - left;
      result |= BigInt(r) << shift;
      shift += 32n;
    }
    return result;
  }

  /** `_randbelow_with_getrandbits(n)`: k = n.bit_length(), redraw while r >= n. Returns 0 for n = 0. */
  randbelow(n: number): number {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new HippoError("INVALID_ARGUMENT", "randbelow takes a non-negative integer", { got: String(n) });
    }
    if (n === 0) return 0;
    if (n > 0xffffffff) {
      const big = BigInt(n);
      const k = big.toString(2).length;
      let r = this.getrandbits(k);
      while (r >= big) r = this.getrandbits(k);
      return Number(r);
    }
    const k = 32 - Math.clz32(n);
    let r = this.getrandbits32(k);
    while (r >= n) r = this.getrandbits32(k);
    return r;
  }

  /** `randrange(start, stop)` with step 1 (`randrange(n)` when stop is omitted). */
  randrange(start: number, stop?: number): number {
    if (stop === undefined) {
      if (start <= 0)
        throw new HippoError("INVALID_ARGUMENT", "empty range for randrange", { got: String(start) });
      return this.randbelow(start);
    }
    const width = stop - start;
    if (width <= 0)
      throw new HippoError("INVALID_ARGUMENT", "empty range for randrange", { got: `${start}, ${stop}` });
    return start + this.randbelow(width);
  }

  /** `choice(seq)`. */
  choice<T>(seq: readonly T[]): T {
    if (seq.length === 0) throw new HippoError("INVALID_ARGUMENT", "cannot choose from an empty sequence");
    return seq[this.randbelow(seq.length)] as T;
  }

  /** `shuffle(x)` in place: for i from len-1 down to 1, swap x[i] with x[randbelow(i + 1)]. */
  shuffle<T>(x: T[]): void {
    for (let i = x.length - 1; i > 0; i--) {
      const j = this.randbelow(i + 1);
      const t = x[i] as T;
      x[i] = x[j] as T;
      x[j] = t;
    }
  }

  /**
   * `sample(population, k)`: a pool copy when the population is small compared to the set a set-based draw
   * would need (setsize = 21, plus 4 ** ceil(log4(3k)) when k > 5), else rejection on a set of indices.
   */
  sample<T>(population: readonly T[], k: number): T[] {
    const n = population.length;
    if (!Number.isInteger(k) || k < 0 || k > n) {
      throw new HippoError("INVALID_ARGUMENT", "sample larger than population or is negative", {
        expected: `0 <= k <= ${n}`,
        got: String(k),
      });
    }
    const result: T[] = new Array(k);
    let setsize = 21;
    if (k > 5) setsize += 4 ** Math.ceil(Math.log(k * 3) / Math.log(4));
    if (n <= setsize) {
      const pool = population.slice();
      for (let i = 0; i < k; i++) {
        const j = this.randbelow(n - i);
        result[i] = pool[j] as T;
        pool[j] = pool[n - i - 1] as T;
      }
    } else {
      const selected = new Set<number>();
      for (let i = 0; i < k; i++) {
        let j = this.randbelow(n);
        while (selected.has(j)) j = this.randbelow(n);
        selected.add(j);
        result[i] = population[j] as T;
      }
    }
    return result;
  }

  getState(): PyRandomState {
    return { mt: Array.from(this.mt), index: this.index };
  }

  setState(state: PyRandomState): void {
    if (
      !Array.isArray(state.mt) ||
      state.mt.length !== N ||
      !Number.isInteger(state.index) ||
      state.index < 0 ||
      state.index > N
    ) {
      throw new HippoError("INVALID_ARGUMENT", "invalid Mersenne Twister state", {
        expected: `624 words and 0 <= index <= 624`,
      });
    }
    this.mt.set(state.mt.map((w) => w >>> 0));
    this.index = state.index;
  }
}
