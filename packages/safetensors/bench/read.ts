/**
 * Read throughput: the lazy reader (one tensor at a time through the file handle) against a plain
 * `fs.readFile` of the same file. Both read from the page cache (the file was just written), so this
 * measures the reader's overhead, not the disk. Also: BF16 -> float32 conversion while reading.
 * Run: pnpm --filter @hippocrates/safetensors bench
 */
import { readFile, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { openSafetensors, type TensorToWrite, writeSafetensors } from "../src/index.js";

const TENSORS = 50;
const FLOATS = 1 << 20; // 4 MiB per F32 tensor -> ~210 MB file
const REPEATS = 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(fn: () => Promise<number>): Promise<{ ms: number; bytes: number }> {
  const runs: number[] = [];
  let bytes = 0;
  for (let i = 0; i < REPEATS; i++) {
    const t0 = performance.now();
    bytes = await fn();
    runs.push(performance.now() - t0);
  }
  return { ms: median(runs), bytes };
}

function* model(dtype: "F32" | "BF16"): Generator<[string, TensorToWrite]> {
  for (let i = 0; i < TENSORS; i++) {
    const data = new Float32Array(FLOATS);
    for (let j = 0; j < FLOATS; j += 97) data[j] = Math.sin(i * FLOATS + j);
    yield [`layers.${i}.weight`, { dtype, shape: [1024, FLOATS / 1024], data: () => data }];
  }
}

async function readAll(path: string, how: "bytes" | "float32"): Promise<number> {
  const r = await openSafetensors(path);
  let bytes = 0;
  for (const name of r.tensors.keys()) {
    const t = how === "bytes" ? await r.readBytes(name) : await r.readFloat32(name);
    bytes += how === "bytes" ? t.byteLength : r.tensors.get(name)!.byteLength;
  }
  await r.close();
  return bytes;
}

const dir = os.tmpdir();
const f32Path = join(dir, `hippo-bench-${process.pid}-f32.safetensors`);
const bf16Path = join(dir, `hippo-bench-${process.pid}-bf16.safetensors`);
try {
  await writeSafetensors(f32Path, model("F32"));
  await writeSafetensors(bf16Path, model("BF16"));
  await readFile(f32Path); // warm the page cache for both contenders
  const rows: [string, { ms: number; bytes: number }][] = [
    ["fs.readFile (whole file, F32)", await time(async () => (await readFile(f32Path)).byteLength)],
    ["openSafetensors + readBytes per tensor (F32)", await time(() => readAll(f32Path, "bytes"))],
    ["openSafetensors + readFloat32 per tensor (F32)", await time(() => readAll(f32Path, "float32"))],
    ["fs.readFile (whole file, BF16)", await time(async () => (await readFile(bf16Path)).byteLength)],
    [
      "openSafetensors + readFloat32 per tensor (BF16 -> f32)",
      await time(() => readAll(bf16Path, "float32")),
    ],
  ];
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  console.log(
    `\nsafetensors read throughput: ${TENSORS} tensors x ${FLOATS} elements, median of ${REPEATS}, page cache warm`,
  );
  console.log(`machine: ${cpu}, ${os.cpus().length} cores, Node ${process.version}\n`);
  console.log("| reader | MB read | ms | MB/s |");
  console.log("|---|---:|---:|---:|");
  for (const [name, { ms, bytes }] of rows) {
    console.log(
      `| ${name} | ${(bytes / 1e6).toFixed(1)} | ${ms.toFixed(1)} | ${(bytes / 1e6 / (ms / 1000)).toFixed(0)} |`,
    );
  }
} finally {
  await rm(f32Path, { force: true });
  await rm(bf16Path, { force: true });
}
