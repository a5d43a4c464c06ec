/**
 * Element types of the safetensors format and exact conversions between float32 and the 16-bit formats, done
 * on integer views of the bits.
 * Conversions follow the references bit for bit: float32 -> F16 as numpy (`npy_floatbits_to_halfbits`,
 * round-to-nearest-even, NaN payload kept), float32 -> BF16 as torch (`c10::round_to_nearest_even`,
 * every NaN becomes 0x7FC0).
 */

export type DType = "F32" | "F16" | "BF16" | "F64" | "I8" | "I16" | "I32" | "I64" | "U8" | "BOOL";

const BYTE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8,
  I64: 8,
  F32: 4,
  I32: 4,
  F16: 2,
  BF16: 2,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export const DTYPES: readonly DType[] = Object.freeze(Object.keys(BYTE_SIZE) as DType[]);

export function isDType(v: unknown): v is DType {
  return typeof v === "string" && Object.hasOwn(BYTE_SIZE, v);
}

/** Bytes per element. */
export function dtypeByteSize(d: DType): number {
  return BYTE_SIZE[d];
}

/** Typed array a dtype reads into with `readTyped` (F16/BF16 widen to float32: JS has no 16-bit float array). */
export type TypedTensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array;

/*
 * Every conversion below works on the bits (Uint16Array / Uint32Array views, integer operations) and never
 * reads a float32 into a JS number: V8 widens a float32 to a double when it loads one, and whether a NaN
 * keeps its signalling bit on the way back depends on the tier running the loop. Measured on Node 20 (x64): the
 * copy loop `out[i] = table[h[i]]` over Float32Arrays quieted all 1,022 signalling F16 NaNs (0x7c01 came back
 * as 0x7e01) when interpreted, none once TurboFan had compiled it, and some in between when on-stack
 * replacement swapped tiers mid-loop: a round-trip test passed or failed with the JIT's timing.
 * test/conversions.test.ts runs every conversion interpreted (--jitless) and TurboFan-compiled.
 */

/** float32 bits -> IEEE half bits, round-to-nearest-even, overflow to +-Inf, NaN keeps its top payload bits. */
export function float32BitsToF16Bits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  let sig = f & 0x7fffff;
  if (exp === 0xff) {
    if (sig === 0) return sign | 0x7c00; // +-Inf
    const nan = 0x7c00 | (sig >>> 13);
    return sign | (nan === 0x7c00 ? 0x7c01 : nan); // keep it a NaN when the payload sits in the low bits
  }
  if (exp >= 0x8f) return sign | 0x7c00; // |f| >= 65536: overflow (after rounding it would be Inf anyway)
  if (exp <= 0x70) {
    // Result is subnormal or zero in half precision.
    if (exp < 0x66) return sign; // below half of the smallest subnormal: rounds to zero
    sig |= 0x800000; // implicit leading bit
    const shift = 0x7e - exp; // 14..24
    const half = sig >>> shift;
    const rem = sig & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    const up = rem > mid || (rem === mid && (half & 1) === 1);
    return sign | (half + (up ? 1 : 0));
  }
  // Normal: rebias exponent 127 -> 15 and round the 13 dropped mantissa bits to nearest even; a carry out of
  // the mantissa correctly bumps the exponent (and can produce Inf at the top of the range).
  const bits = ((exp - 0x70) << 10) | (sig >>> 13);
  const rem = sig & 0x1fff;
  const up = rem > 0x1000 || (rem === 0x1000 && (bits & 1) === 1);
  return sign | (bits + (up ? 1 : 0));
}

/** IEEE half bits -> float32 bits (exact: every half value is a float32; a NaN keeps sign and payload). */
export function f16BitsToFloat32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const sig = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (sig << 13)) >>> 0; // Inf, NaN (payload shifted up)
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (sig << 13)) >>> 0;
  if (sig === 0) return sign >>> 0; // +-0
  // Subnormal sig x 2^-24: normalize so the leading bit (at position e) becomes the implicit one.
  const e = 31 - Math.clz32(sig); // 0..9
  return (sign | ((e + 103) << 23) | ((sig << (23 - e)) & 0x7fffff)) >>> 0;
}

let f16Table: Uint32Array | undefined;
/** The float32 bits of all 65536 half values, built once on first use. */
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const table = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = f16BitsToFloat32Bits(h);
  f16Table = table;
  return table;
}

export function float32ToF16(f: Float32Array): Uint16Array {
  const src = new Uint32Array(f.buffer, f.byteOffset, f.length);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < src.length; i++) out[i] = float32BitsToF16Bits(src[i]!);
  return out;
}

export function f16ToFloat32(h: Uint16Array): Float32Array {
  const table = f16ToF32Table();
  const out = new Float32Array(h.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < h.length; i++) bits[i] = table[h[i]!]!;
  return out;
}

/** float32 -> bfloat16 bits exactly as torch: round-to-nearest-even on the upper half, NaN -> 0x7FC0. */
export function float32ToBF16(f: Float32Array): Uint16Array {
  const src = new Uint32Array(f.buffer, f.byteOffset, f.length);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < src.length; i++) {
    const u = src[i]!;
    if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) {
      out[i] = 0x7fc0;
    } else {
      const bias = ((u >>> 16) & 1) + 0x7fff;
      out[i] = (u + bias) >>> 16; // no 32-bit overflow: the largest non-NaN input is -Inf, 0xFF800000
    }
  }
  return out;
}

/** bfloat16 bits -> float32 (exact: the bits become the upper half). */
export function bf16ToFloat32(b: Uint16Array): Float32Array {
  const out = new Float32Array(b.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < b.length; i++) bits[i] = b[i]! << 16;
  return out;
}
