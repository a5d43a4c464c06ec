/** Raw little-endian tensor bytes -> typed arrays / Float32Array. */
import { HippoError } from "@hippocrates/core";
import { bf16ToFloat32, type DType, f16ToFloat32, type TypedTensorData } from "./dtypes.js";

/** View bytes (an exact, aligned copy owned by the caller) as the dtype's typed array. */
export function bytesToTyped(dtype: DType, bytes: Uint8Array): TypedTensorData {
  const b = aligned(bytes, dtypeAlign(dtype));
  const n = b.byteLength;
  switch (dtype) {
    case "F32":
      return new Float32Array(b.buffer, b.byteOffset, n / 4);
    case "F64":
      return new Float64Array(b.buffer, b.byteOffset, n / 8);
    case "F16":
      return f16ToFloat32(new Uint16Array(b.buffer, b.byteOffset, n / 2));
    case "BF16":
      return bf16ToFloat32(new Uint16Array(b.buffer, b.byteOffset, n / 2));
    case "I8":
      return new Int8Array(b.buffer, b.byteOffset, n);
    case "I16":
      return new Int16Array(b.buffer, b.byteOffset, n / 2);
    case "I32":
      return new Int32Array(b.buffer, b.byteOffset, n / 4);
    case "I64":
      return new BigInt64Array(b.buffer, b.byteOffset, n / 8);
    case "U8":
    case "BOOL":
      return b;
  }
}

export function bytesToFloat32(dtype: DType, bytes: Uint8Array): Float32Array {
  const typed = bytesToTyped(dtype, bytes);
  if (typed instanceof Float32Array) return typed;
  if (typed instanceof BigInt64Array) {
    const out = new Float32Array(typed.length);
    for (let i = 0; i < typed.length; i++) out[i] = Number(typed[i]!);
    return out;
  }
  if (dtype === "BOOL") {
    const out = new Float32Array(typed.length);
    for (let i = 0; i < typed.length; i++) out[i] = typed[i] ? 1 : 0;
    return out;
  }
  return Float32Array.from(typed as Exclude<TypedTensorData, BigInt64Array>);
}

function dtypeAlign(dtype: DType): number {
  switch (dtype) {
    case "F64":
    case "I64":
      return 8;
    case "F32":
    case "I32":
      return 4;
    case "F16":
    case "BF16":
    case "I16":
      return 2;
    default:
      return 1;
  }
}

function aligned(bytes: Uint8Array, align: number): Uint8Array {
  if (bytes.byteOffset % align === 0) return bytes;
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

export function assertLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new HippoError("UNSUPPORTED", "safetensors is little-endian; this host is big-endian", {
      expected: "little-endian host",
      got: "big-endian",
    });
  }
}
