/** Write -> read round trips, bit-exact, for every dtype and the awkward values each one has. */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  DTYPES,
  type DType,
  dtypeByteSize,
  openSafetensors,
  type TensorToWrite,
  writeSafetensors,
} from "../src/index.js";
import { listDir, tempDir } from "./helpers.js";

const { dir, cleanup } = await tempDir("roundtrip");
afterAll(cleanup);

const f32Bits = new Uint32Array([
  0x00000000,
  0x80000000,
  0x7f800000,
  0xff800000,
  0x7fc00000,
  0x7fc00123,
  0xffbfffff,
  0x7f800001, // +-0 +-Inf NaN payloads
  0x00000001,
  0x807fffff,
  0x00800000,
  0x7f7fffff,
  0x3f800000,
  0xbf8ccccd,
  0x12345678,
  0xdeadbeef,
]);
const f64 = new Float64Array([
  0,
  -0,
  Infinity,
  -Infinity,
  Number.MIN_VALUE,
  -Number.MAX_VALUE,
  Math.PI,
  1e-310,
]);
const f64Bits = new BigUint64Array(f64.buffer);
f64Bits[0] = 0x7ff8000000000abcn; // NaN with a payload
f64Bits[1] = 0xfff0000000000001n; // signalling-pattern NaN, negative
const all16 = new Uint16Array(65536).map((_, i) => i); // every F16/BF16 pattern: NaN payloads, -0, subnormals

const cases: Record<DType, TensorToWrite> = {
  F32: { dtype: "F32", shape: [4, 4], data: new Float32Array(f32Bits.buffer) },
  F64: { dtype: "F64", shape: [8], data: f64 },
  F16: { dtype: "F16", shape: [256, 256], data: all16 },
  BF16: { dtype: "BF16", shape: [65536], data: all16 },
  I8: { dtype: "I8", shape: [2, 3], data: new Int8Array([-128, -1, 0, 1, 127, 42]) },
  I16: { dtype: "I16", shape: [4], data: new Int16Array([-32768, -1, 0, 32767]) },
  I32: { dtype: "I32", shape: [5], data: new Int32Array([-(2 ** 31), -1, 0, 1, 2 ** 31 - 1]) },
  I64: {
    dtype: "I64",
    shape: [5],
    data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n + 1n, -(2n ** 53n) - 3n, 0n]),
  },
  U8: { dtype: "U8", shape: [1, 4], data: new Uint8Array([0, 1, 128, 255]) },
  BOOL: { dtype: "BOOL", shape: [3], data: new Uint8Array([1, 0, 1]) },
};

function rawBytes(v: ArrayBufferView): number[] {
  return [...new Uint8Array(v.buffer, v.byteOffset, v.byteLength)];
}

describe("round trip", () => {
  it("every dtype, bit-exact, with metadata, in the given order", async () => {
    const path = join(dir, "all.safetensors");
    await writeSafetensors(path, cases, { format: "pt", note: "ünïcode ✓" });
    const r = await openSafetensors(path);
    try {
      expect([...r.tensors.keys()]).toEqual(Object.keys(cases));
      expect({ ...r.metadata }).toEqual({ format: "pt", note: "ünïcode ✓" });
      for (const d of DTYPES) {
        const c = cases[d];
        const info = r.tensors.get(d)!;
        expect(info).toMatchObject({ dtype: d, shape: c.shape });
        expect(info.byteLength).toBe(c.shape.reduce((a, b) => a * b, 1) * dtypeByteSize(d));
        expect(rawBytes(await r.readBytes(d))).toEqual(rawBytes(c.data as ArrayBufferView));
      }
      // The data region starts 8-byte aligned (header padded with spaces, as the reference writer does).
      expect(r.tensors.get("F32")!.byteOffset % 8).toBe(0);
    } finally {
      await r.close();
    }
  });

  it("readTyped gives each dtype's array; I64 beyond 2^53 survives as BigInt", async () => {
    const path = join(dir, "all.safetensors");
    const r = await openSafetensors(path);
    try {
      const i64 = await r.readTyped("I64");
      expect(i64).toBeInstanceOf(BigInt64Array);
      expect([...(i64 as BigInt64Array)]).toEqual([...(cases.I64.data as BigInt64Array)]);
      expect(await r.readTyped("I8")).toEqual(cases.I8.data);
      expect(await r.readTyped("I16")).toEqual(cases.I16.data);
      expect(await r.readTyped("I32")).toEqual(cases.I32.data);
      expect(await r.readTyped("U8")).toEqual(cases.U8.data);
      expect(await r.readTyped("F64")).toBeInstanceOf(Float64Array);
      expect(await r.readTyped("BF16")).toBeInstanceOf(Float32Array);
      expect([...(await r.readFloat32("I8"))]).toEqual([-128, -1, 0, 1, 127, 42]);
      // float32 has 24 significant bits: 2^53 + 1 and -(2^53) - 3 round to +-2^53.
      expect([...(await r.readFloat32("I64"))]).toEqual([-(2 ** 63), 2 ** 63, 2 ** 53, -(2 ** 53), 0]);
      expect([...(await r.readFloat32("BOOL"))]).toEqual([1, 0, 1]);
      const f = await r.readFloat32("F32");
      expect(rawBytes(f)).toEqual(rawBytes(cases.F32.data as ArrayBufferView)); // NaN payloads kept
    } finally {
      await r.close();
    }
  });

  it("Float32Array input is converted for F16, BF16 and F64", async () => {
    const path = join(dir, "conv.safetensors");
    const x = new Float32Array([1, -0.5, 3.140625, 65504, 1e-7]);
    await writeSafetensors(path, [
      ["h", { dtype: "F16", shape: [5], data: x }],
      ["b", { dtype: "BF16", shape: [5], data: x }],
      ["d", { dtype: "F64", shape: [5], data: x }],
    ]);
    const r = await openSafetensors(path);
    expect([...(await r.readFloat32("h"))]).toEqual([1, -0.5, 3.140625, 65504, 1.1920928955078125e-7]);
    expect([...(await r.readFloat32("b"))]).toEqual([1, -0.5, 3.140625, 65536, 1.0011717677116394e-7]);
    expect([...(await r.readTyped("d"))]).toEqual([...x]);
    await r.close();
  });

  it("scalars, empty tensors, '__proto__' / 'constructor' / integer-like names as ordinary names", async () => {
    const path = join(dir, "odd.safetensors");
    const entries: [string, TensorToWrite][] = [
      ["__proto__", { dtype: "F32", shape: [], data: new Float32Array([7]) }],
      ["constructor", { dtype: "U8", shape: [0], data: new Uint8Array(0) }],
      ["7", { dtype: "I32", shape: [2, 0, 3], data: new Int32Array(0) }],
      ["hasOwnProperty", { dtype: "U8", shape: [1], data: new Uint8Array([9]) }],
    ];
    await writeSafetensors(path, entries, { __proto__: "x", toString: "y" } as unknown as Record<
      string,
      string
    >);
    const r = await openSafetensors(path);
    try {
      // Header order, even for an integer-like name (which a JS object would list first).
      expect([...r.tensors.keys()]).toEqual(["__proto__", "constructor", "7", "hasOwnProperty"]);
      expect([...(await r.readFloat32("__proto__"))]).toEqual([7]);
      expect(r.tensors.get("constructor")).toMatchObject({ shape: [0], byteLength: 0 });
      expect((await r.readTyped("7")).length).toBe(0);
      expect([...(await r.readBytes("hasOwnProperty"))]).toEqual([9]);
      expect(Object.getPrototypeOf(r.metadata)).toBe(null);
      expect(r.metadata.toString).toBe("y");
      expect(({} as Record<string, unknown>).x).toBeUndefined();
    } finally {
      await r.close();
    }
  });

  it("lazy function data is produced in order, one tensor at a time", async () => {
    const path = join(dir, "lazy.safetensors");
    const calls: string[] = [];
    const lazy = (name: string, v: number): [string, TensorToWrite] => [
      name,
      {
        dtype: "F32",
        shape: [2],
        data: async () => {
          calls.push(name);
          return new Float32Array([v, v]);
        },
      },
    ];
    await writeSafetensors(
      path,
      (function* () {
        yield lazy("a", 1);
        yield lazy("b", 2);
      })(),
    );
    expect(calls).toEqual(["a", "b"]);
    const r = await openSafetensors(path);
    expect([...(await r.readFloat32("b"))]).toEqual([2, 2]);
    await r.close();
  });

  it("a file with no tensors is valid and readable", async () => {
    const path = join(dir, "empty.safetensors");
    await writeSafetensors(path, {});
    expect((await readFile(path)).byteLength).toBe(16); // 8 + "{}" padded to 8
    const r = await openSafetensors(path);
    expect(r.tensors.size).toBe(0);
    await r.close();
  });
});

describe("atomic writes", () => {
  it("a tensor whose data does not match its shape leaves no file and no temp file", async () => {
    const { dir: d, cleanup: c } = await tempDir("atomic");
    try {
      const path = join(d, "bad.safetensors");
      await expect(
        writeSafetensors(path, {
          ok: { dtype: "F32", shape: [2], data: new Float32Array(2) },
          bad: { dtype: "F32", shape: [3], data: new Float32Array(2) },
        }),
      ).rejects.toThrow(
        /bad.*data length does not match shape x dtype size \(expected 12 bytes \(F32 \[3\]\), got 8 bytes\)/,
      );
      expect(await listDir(d)).toEqual([]);
      // A failing data producer also leaves the previous file untouched.
      await writeSafetensors(path, { x: { dtype: "U8", shape: [1], data: new Uint8Array([5]) } });
      const before = await readFile(path);
      await expect(
        writeSafetensors(path, {
          x: {
            dtype: "U8",
            shape: [1],
            data: () => {
              throw new Error("producer failed");
            },
          },
        }),
      ).rejects.toThrow(/producer failed/);
      expect(await listDir(d)).toEqual(["bad.safetensors"]);
      expect(await readFile(path)).toEqual(before);
    } finally {
      await c();
    }
  });

  it("rejects wrong typed arrays, bad shapes, duplicate names and __metadata__ as a tensor name", async () => {
    const path = join(dir, "never.safetensors");
    const t = (over: Partial<TensorToWrite>): TensorToWrite => ({
      dtype: "F32",
      shape: [1],
      data: new Float32Array(1),
      ...over,
    });
    await expect(writeSafetensors(path, { a: t({ data: new Int32Array(1) }) })).rejects.toThrow(
      /wrong typed array for F32.*got Int32Array/,
    );
    await expect(writeSafetensors(path, { a: t({ shape: [-1] }) })).rejects.toThrow(
      /shape must be non-negative integers/,
    );
    await expect(writeSafetensors(path, { a: t({ shape: [1.5] }) })).rejects.toThrow(/shape/);
    await expect(writeSafetensors(path, { a: t({ dtype: "F8" as DType }) })).rejects.toThrow(/unknown dtype/);
    await expect(
      writeSafetensors(path, [
        ["a", t({})],
        ["a", t({})],
      ]),
    ).rejects.toThrow(/duplicate tensor name/);
    await expect(writeSafetensors(path, { __metadata__: t({}) })).rejects.toThrow(/invalid tensor name/);
    await expect(
      writeSafetensors(path, { a: t({ dtype: "I32", data: new Float32Array(1) }) }),
    ).rejects.toThrow(/Float32Array converts only to F16, BF16 or F64/);
    await expect(stat(path)).rejects.toThrow();
  });
});
