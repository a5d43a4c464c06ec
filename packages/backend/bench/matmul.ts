/**
 * Matmul GFLOP/s on the selected backend with 1 and 2 (and, on bigger machines, all usable) wasm threads.
 * The thread count is fixed once per process, so each count runs in a child process of this script.
 *
 *   pnpm --filter @hippocrates/backend bench        (HIPPO_BACKEND picks another backend; BENCH_REPS=5)
 */
import { spawnSync } from "node:child_process";
import os from "node:os";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs-core";
import { type BackendInfo, defaultWasmThreads, describeBackend, initBackend } from "../src/index.js";

interface Case {
  label: string;
  /** Shapes of a and b as given to tf.matMul. */
  a: number[];
  b: number[];
  transposeB: boolean;
  flops: number;
}

const CASES: Case[] = [
  { label: "2-D matMul(a, b)", a: [1024, 1024], b: [1024, 1024], transposeB: false, flops: 2 * 1024 ** 3 },
  {
    label: "2-D matMul(a, b, false, true)",
    a: [1024, 1024],
    b: [1024, 1024],
    transposeB: true,
    flops: 2 * 1024 ** 3,
  },
  // Batched matmul is ~50x slower on wasm: a smaller n keeps the run short.
  {
    label: "3-D batched matMul, batch 4",
    a: [4, 256, 256],
    b: [4, 256, 256],
    transposeB: false,
    flops: 4 * 2 * 256 ** 3,
  },
];

interface ChildReport {
  info: BackendInfo;
  gflops: number[];
}

const reps = Number(process.env.BENCH_REPS ?? 5);

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

async function child(): Promise<void> {
  const info = await initBackend();
  const gflops: number[] = [];
  for (const c of CASES) {
    const a = tf.randomUniform(c.a, -1, 1, "float32", 1);
    const b = tf.randomUniform(c.b, -1, 1, "float32", 2);
    const once = () => {
      const t0 = performance.now();
      const product = tf.matMul(a, b, false, c.transposeB);
      product.dataSync(); // waits for the result (and copies it out, as real code does)
      const ms = performance.now() - t0;
      product.dispose();
      return ms;
    };
    once(); // warm-up: XNNPACK packs weights and creates its operator on first use
    const times = Array.from({ length: reps }, once);
    gflops.push(c.flops / (median(times) * 1e6));
    a.dispose();
    b.dispose();
  }
  console.log(JSON.stringify({ info, gflops } satisfies ChildReport));
}

function parent(): void {
  const script = fileURLToPath(import.meta.url);
  const counts = [...new Set([1, 2, defaultWasmThreads()])].sort((x, y) => x - y);
  const reports: { threads: number; report: ChildReport }[] = [];
  for (const threads of counts) {
    const run = spawnSync(process.execPath, ["--import", "tsx", script, "--child"], {
      env: { ...process.env, HIPPO_THREADS: String(threads) },
      encoding: "utf8",
    });
    if (run.status !== 0) {
      console.error(run.stderr);
      throw new Error(`bench child with ${threads} thread(s) failed (${run.status ?? run.signal})`);
    }
    const line = run.stdout.trim().split("\n").at(-1) ?? "";
    reports.push({ threads, report: JSON.parse(line) as ChildReport });
  }
  // A native backend ignores HIPPO_THREADS: one column is enough then.
  const columns = reports[0]?.report.info.name === "wasm" ? reports : reports.slice(0, 1);

  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  console.log("## matmul GFLOP/s (fp32, median of %d after one warm-up; GFLOP/s = 2mnk / time)\n", reps);
  console.log(
    `machine: ${cpu}, ${os.cpus().length} cores, Node ${process.version}, ${os.platform()} ${os.arch()}`,
  );
  for (const { report } of columns) console.log(`backend: ${describeBackend(report.info)}`);
  console.log("");
  const head = columns.map(({ report }) => `${report.info.name} ${report.info.threads} thr`);
  const speedup = columns.length > 1;
  console.log(`| op | a x b | ${head.join(" | ")} |${speedup ? " 2 thr / 1 thr |" : ""}`);
  console.log(`|---|---|${head.map(() => "---:").join("|")}|${speedup ? "---:|" : ""}`);
  CASES.forEach((c, i) => {
    const cells = columns.map(({ report }) => (report.gflops[i] ?? Number.NaN).toFixed(1));
    const one = columns.find((r) => r.threads === 1)?.report.gflops[i];
    const two = columns.find((r) => r.threads === 2)?.report.gflops[i];
    const ratio = one !== undefined && two !== undefined ? ` ${(two / one).toFixed(2)}x |` : "";
    console.log(
      `| ${c.label} | ${c.a.join("x")} x ${c.b.join("x")} | ${cells.join(" | ")} |${speedup ? ratio : ""}`,
    );
  });
}

if (process.argv.includes("--child")) await child();
else parent();
