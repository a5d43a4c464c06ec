/**
 * Kernels of @tensorflow/tfjs-backend-wasm replaced by faster ones with the same results.
 *
 * `Slice`. The stock kernel (tfjs-backend-wasm 4.22.0, `kernels/Slice.js`) starts with
 * `backend.readSync(x.dataId)`, which copies the whole input out of the WebAssembly heap into a new
 * ArrayBuffer on every call, and then copies the slice out of that copy. Taking one row of three out of a
 * [3, 97536] tensor (one KV head of a 508-token attention operand) so costs 2.6 ms, where the slice itself is
 * 390 KB; it is why the model package picked rows with a one-hot matrix product (0.8 ms) instead. This kernel
 * reads the input through a view of the heap (`typedArrayFromHeap`) and copies only the slice, in runs that are
 * contiguous in both tensors: 0.025 ms for the same row (measured on this 2-core machine, Node 20). The values
 * are copied, never computed, so the output is the same bits as the stock kernel's (tested against it).
 * String tensors (not in the heap) keep the stock kernel. Unlike the stock kernel, a slice reaching past the
 * input is refused (tfjs's `assertParamsValid`, as the cpu backend does) instead of copying what lies beyond.
 *
 * `Identity` (what `tf.clone` runs, and what the gradient tape runs on every tensor a custom gradient saves).
 * The stock kernel copies the tensor's bytes; tensors are immutable in tfjs (a Variable's `assign` gives it new
 * storage), so this one shares the storage and counts a reference, as the wasm backend's own Reshape and the
 * cpu backend's Identity do. A training step of the SmolLM-135M shape spent 0.52 s of ~13 s in these copies
 * (the attention's saved probabilities are the bulk).
 */
import { BackendWasm } from "@tensorflow/tfjs-backend-wasm";
import {
  getKernel,
  Identity,
  type KernelConfig,
  type KernelFunc,
  registerKernel,
  Slice,
  slice_util,
  type TensorInfo,
  unregisterKernel,
  util,
} from "@tensorflow/tfjs-core";

/** The tfjs-backend-wasm release whose Slice and Identity kernels this replaces (re-check when it changes). */
export const REPLACED_KERNELS_VERSION = "4.22.0";

let stockSlice: KernelConfig | undefined;
let stockIdentity: KernelConfig | undefined;

/**
 * Copy x[begin : begin + size] into out, run by run. A run is the longest stretch that is contiguous in
 * both: the innermost axes the slice takes whole, times the size along the first axis it cuts (from inside).
 */
export function copySlice(
  x: ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> },
  shape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
  out: { set(values: ArrayLike<number>, offset: number): void },
): void {
  const rank = shape.length;
  if (rank === 0) {
    out.set(x.subarray(0, 1), 0);
    return;
  }
  const strides = util.computeStrides([...shape]);
  const stride = (axis: number) => (axis === rank - 1 ? 1 : (strides[axis] as number));
  // Axes from `cut` on are one run per index of the axes before it.
  let cut = rank - 1;
  while (cut > 0 && size[cut] === shape[cut] && begin[cut] === 0) cut--;
  const run = (size[cut] as number) * (cut === rank - 1 ? 1 : (strides[cut] as number));
  let outer = 1;
  for (let a = 0; a < cut; a++) outer *= size[a] as number;
  const index = new Array<number>(cut).fill(0);
  let base = 0;
  for (let a = 0; a <= cut; a++) base += (begin[a] as number) * stride(a);
  for (let r = 0; r < outer; r++) {
    let offset = base;
    for (let a = 0; a < cut; a++) offset += (index[a] as number) * stride(a);
    out.set(x.subarray(offset, offset + run), r * run);
    for (let a = cut - 1; a >= 0; a--) {
      index[a] = (index[a] as number) + 1;
      if ((index[a] as number) < (size[a] as number)) break;
      index[a] = 0;
    }
  }
}

type SliceBound = number | number[];
const isBound = (v: unknown): v is SliceBound =>
  typeof v === "number" || (Array.isArray(v) && v.every((e) => typeof e === "number"));

const heapSlice: KernelFunc = (params) => {
  const { inputs, attrs, backend } = params;
  const x = inputs.x;
  const begin = attrs?.begin;
  const size = attrs?.size;
  if (
    x === undefined ||
    x.dtype === "string" ||
    !(backend instanceof BackendWasm) ||
    !isBound(begin) ||
    !isBound(size)
  ) {
    // Anything this kernel does not handle goes to the stock one, which also reports bad arguments.
    if (stockSlice === undefined) throw new Error("the stock wasm Slice kernel is not registered");
    return stockSlice.kernelFunc(params);
  }
  const [b = [], s = []] = slice_util.parseSliceParams(x, begin, size);
  // The stock kernel does not check, and would copy whatever lies past the input: this one refuses.
  slice_util.assertParamsValid(x, b, s);
  const out = backend.makeOutput(s, x.dtype);
  if (util.sizeFromShape(s) === 0) return out;
  // Views taken after makeOutput: allocating may grow the heap, which detaches older views.
  copySlice(backend.typedArrayFromHeap(x), x.shape, b, s, backend.typedArrayFromHeap(out));
  return out;
};

const sharedIdentity: KernelFunc = (params) => {
  const { inputs, backend } = params;
  const x = inputs.x;
  if (x === undefined || x.dtype === "string" || !(backend instanceof BackendWasm)) {
    if (stockIdentity === undefined) throw new Error("the stock wasm Identity kernel is not registered");
    return stockIdentity.kernelFunc(params);
  }
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

/**
 * Register the replacements for the "wasm" backend (idempotent). Kernels are looked up on every call, so
 * this takes effect for ops run afterwards, whenever the backend was created.
 */
export function installWasmKernels(): void {
  if (stockSlice !== undefined) return;
  const slice = getKernel(Slice, "wasm");
  const identity = getKernel(Identity, "wasm");
  if (slice === undefined || identity === undefined) return; // tfjs-backend-wasm not loaded: nothing to replace
  stockSlice = slice;
  stockIdentity = identity;
  unregisterKernel(Slice, "wasm");
  registerKernel({ kernelName: Slice, backendName: "wasm", kernelFunc: heapSlice });
  unregisterKernel(Identity, "wasm");
  registerKernel({ kernelName: Identity, backendName: "wasm", kernelFunc: sharedIdentity });
}
