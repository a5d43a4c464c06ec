/**
 * float32 <-> F16/BF16 against independent references: numpy's float16 cast (round-to-nearest-even,
 * NaN payload kept) and torch's bfloat16 cast, over special values, 3000 random bit patterns, weight-like
 * values and the f16 subnormal range (fixtures/make_fixtures.py -> fixtures/conversions.json). Exact bits.
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { bf16ToFloat32, f16ToFloat32, float32ToBF16, float32ToF16 } from "../src/index.js";

const ref = JSON.parse(await readFile(new URL("./fixtures/conversions.json", import.meta.url), "utf8")) as {
  f32: number[];
  f16: number[];
  bf16: number[] | null;
  bf16_source: string | null;
};
const f32 = new Float32Array(new Uint32Array(ref.f32).buffer);
const isNaNBits = (b: number) => (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0;

function hex(values: ArrayLike<number>): string[] {
  return Array.from(values, (v) => v.toString(16));
}

describe("float32 -> F16", () => {
  it(`matches numpy astype(float16) bit for bit on ${ref.f32.length} values`, () => {
    expect(hex(float32ToF16(f32))).toEqual(hex(ref.f16));
  });

  it("known patterns: ties to even, overflow, subnormals, NaN", () => {
    const bits = (xs: number[]) => Array.from(float32ToF16(new Float32Array(xs)));
    expect(bits([1, -2, 65504, 65519.996, 65520, 1e6, -0])).toEqual([
      0x3c00, 0xc000, 0x7bff, 0x7bff, 0x7c00, 0x7c00, 0x8000,
    ]);
    // 1 + 2^-11 is exactly between 1 and 1 + 2^-10: ties to even (1); 1 + 3*2^-11 ties up to 1 + 2^-9.
    expect(bits([1 + 2 ** -11, 1 + 3 * 2 ** -11])).toEqual([0x3c00, 0x3c02]);
    // Smallest subnormal 2^-24, half of it ties to even (0), a bit more rounds up.
    expect(bits([2 ** -24, 2 ** -25, 2 ** -25 * 1.0000001, 2 ** -14])).toEqual([
      0x0001, 0x0000, 0x0001, 0x0400,
    ]);
    expect(Number.isNaN(f16ToFloat32(float32ToF16(new Float32Array([Number.NaN])))[0])).toBe(true);
  });
});

describe("float32 -> BF16", () => {
  it.skipIf(ref.bf16 === null)(`matches ${ref.bf16_source} bit for bit on every non-NaN value`, () => {
    const got = float32ToBF16(f32);
    const mine: string[] = [];
    const theirs: string[] = [];
    ref.f32.forEach((b, i) => {
      if (isNaNBits(b)) return;
      mine.push(got[i]!.toString(16));
      theirs.push(ref.bf16![i]!.toString(16));
    });
    expect(mine.length).toBeGreaterThan(6000);
    expect(mine).toEqual(theirs);
  });

  it("NaN becomes the canonical quiet NaN 0x7FC0 (torch's scalar c10::BFloat16 rule)", () => {
    const nans = new Float32Array(new Uint32Array([0x7fc00000, 0xffc00001, 0x7f800001, 0x7fbfffff]).buffer);
    expect(Array.from(float32ToBF16(nans))).toEqual([0x7fc0, 0x7fc0, 0x7fc0, 0x7fc0]);
  });

  it("known patterns: round to nearest, ties to even", () => {
    const u = (xs: number[]) => Array.from(float32ToBF16(new Float32Array(new Uint32Array(xs).buffer)));
    // 0x3F808000 is a tie between 0x3F80 and 0x3F81 -> even 0x3F80; 0x3F818000 ties between 0x3F81/0x3F82 -> 0x3F82.
    expect(u([0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0x7f7fffff, 0xff800000, 0x80000000])).toEqual([
      0x3f80, 0x3f82, 0x3f81, 0x3f80, 0x7f80, 0xff80, 0x8000,
    ]);
  });
});

describe("F16/BF16 -> float32", () => {
  const all = new Uint16Array(65536).map((_, i) => i);

  it("F16: every one of the 65536 patterns decodes to sign x 2^e x (1 + m/1024) (or the subnormal/Inf/NaN rule)", () => {
    const got = f16ToFloat32(all);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      const want =
        e === 0
          ? s * m * 2 ** -24
          : e === 31
            ? m
              ? Number.NaN
              : s * Number.POSITIVE_INFINITY
            : s * 2 ** (e - 15) * (1 + m / 1024);
      if (!Object.is(got[h], want)) expect.fail(`f16 0x${h.toString(16)}: got ${got[h]}, want ${want}`);
    }
  });

  it("F16: float32 -> F16 -> float32 -> F16 is the identity on the 65536 patterns (NaN payloads included)", () => {
    expect(hex(float32ToF16(f16ToFloat32(all)))).toEqual(hex(all));
  });

  it("BF16: widening is exact, and narrowing it back gives the same bits (except NaN -> 0x7FC0)", () => {
    const wide = bf16ToFloat32(all);
    const wbits = new Uint32Array(wide.buffer);
    for (let h = 0; h < 65536; h++) if (wbits[h] !== (h << 16) >>> 0) expect.fail(`bf16 0x${h.toString(16)}`);
    const back = float32ToBF16(wide);
    for (let h = 0; h < 65536; h++) {
      const want = isNaNBits((h << 16) >>> 0) ? 0x7fc0 : h;
      if (back[h] !== want) expect.fail(`bf16 0x${h.toString(16)} -> 0x${back[h]!.toString(16)}`);
    }
  });
});

/**
 * The same conversions in each V8 tier, each in its own process: interpreted (--jitless) and compiled by
 * TurboFan (forced with %OptimizeFunctionOnNextCall, and the optimization status checked). A conversion that
 * carries a float through a JS number keeps NaN payloads in one tier and not in another, which made the
 * round-trip test above pass or fail with the JIT's timing; here each tier is checked on purpose, against
 * expectations computed from the bits alone (numpy/torch references, or integer formulas).
 */
describe("conversions give the same bits in every V8 tier", () => {
  const SCRIPT = fileURLToPath(new URL("./fixtures/conversion-tiers.ts", import.meta.url));
  const all = Array.from({ length: 65536 }, (_, h) => h);
  const hexJoin = (values: number[]) => values.map((v) => v.toString(16)).join(" ");
  const f32Bits = (x: number) => {
    const v = new DataView(new ArrayBuffer(4));
    v.setFloat32(0, x, true); // x is never a NaN here: exact
    return v.getUint32(0, true);
  };
  // F16 -> float32 bits from the format's definition: a NaN's 10 payload bits move up 13 places.
  const f16Wide = all.map((h) => {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 31) return (((h & 0x8000) << 16) | 0x7f800000 | (m << 13)) >>> 0;
    return f32Bits(e === 0 ? sign * m * 2 ** -24 : sign * 2 ** (e - 15) * (1 + m / 1024));
  });
  const want: Record<string, string> = {
    f16Widen: hexJoin(f16Wide),
    f16RoundTrip: hexJoin(all),
    f16Narrow: hexJoin(ref.f16),
    bf16Widen: hexJoin(all.map((h) => (h << 16) >>> 0)),
    bf16RoundTrip: hexJoin(all.map((h) => (isNaNBits((h << 16) >>> 0) ? 0x7fc0 : h))),
    readerF16: hexJoin(f16Wide),
    readerBF16: hexJoin(all.map((h) => (h << 16) >>> 0)),
  };
  if (ref.bf16) want.bf16Narrow = hexJoin(ref.f32.map((b, i) => (isNaNBits(b) ? 0x7fc0 : ref.bf16![i]!)));

  async function runTier(flags: string[], args: string[] = []) {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [...flags, "--import", "tsx", SCRIPT, ...args],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    return JSON.parse(stdout) as {
      status: Record<string, Record<string, number>>;
      out: Record<string, string>;
    };
  }
  function expectBits(out: Record<string, string>) {
    for (const [k, bits] of Object.entries(want)) {
      if (out[k] === bits) continue;
      const got = out[k]?.split(" ") ?? [];
      const exp = bits.split(" ");
      const i = exp.findIndex((b, j) => got[j] !== b);
      expect.fail(`${k}: element ${i} is 0x${got[i]}, want 0x${exp[i]}`);
    }
  }

  it("interpreted (--jitless): every pattern, NaN payloads included", async () => {
    expectBits((await runTier(["--jitless"])).out);
  });

  it("compiled by TurboFan: every pattern, NaN payloads included", async () => {
    // Compilation on the main thread only, at points set by the program and not by the machine's load.
    const { status, out } = await runTier(
      [
        "--allow-natives-syntax",
        "--no-concurrent-recompilation",
        "--no-concurrent-osr",
        "--no-concurrent-sparkplug",
      ],
      ["optimize"],
    );
    // V8's OptimizationStatus bits: 16 = optimized, 64 = TurboFan code (src/runtime/runtime.h). Every run's
    // conversions were still TurboFan code once the run was over.
    expect(Object.keys(status).sort()).toEqual([
      "bf16Narrow",
      "bf16RoundTrip",
      "bf16Widen",
      "f16Narrow",
      "f16RoundTrip",
      "f16Widen",
      "readerBF16",
      "readerF16",
    ]);
    for (const [run, fns] of Object.entries(status))
      for (const [fn, s] of Object.entries(fns))
        expect({ run, fn, turbofan: (s & 64) !== 0 }).toEqual({ run, fn, turbofan: true });
    expectBits(out);
  });
});
