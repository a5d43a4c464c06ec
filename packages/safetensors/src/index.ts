export {
  type CheckpointReader,
  type CheckpointTensorInfo,
  DEFAULT_MAX_SHARD_BYTES,
  openCheckpoint,
  type ShardedWriteResult,
  type ShardOptions,
  writeShardedSafetensors,
} from "./checkpoint.js";
export { bytesToFloat32, bytesToTyped } from "./convert.js";
export {
  bf16ToFloat32,
  DTYPES,
  type DType,
  dtypeByteSize,
  f16BitsToFloat32Bits,
  f16ToFloat32,
  float32BitsToF16Bits,
  float32ToBF16,
  float32ToF16,
  isDType,
  type TypedTensorData,
} from "./dtypes.js";
export { DEFAULT_MAX_HEADER_BYTES, type TensorInfo } from "./header.js";
export { type OpenOptions, openSafetensors, type SafetensorsReader } from "./reader.js";
export { type TensorData, type TensorEntries, type TensorToWrite, writeSafetensors } from "./writer.js";
