/**
 * Load test of `hippo serve` on loopback: 32 concurrent clients for 30 s (autocannon, bounded by time and by
 * a request cap), each asking for a short greedy completion. Prints a markdown table: requests, failures
 * (non-2xx + errors + timeouts), p50/p99 latency, requests/s and generated tokens/s, with the machine.
 *
 * Model: the miniature's merged model when it exists (runs/miniature/run/07-merge/model, or $HIPPO_BENCH_MODEL),
 * else a random Llama of the miniature's shape created in a temporary folder. Run: `pnpm bench` in
 * packages/cli (or `HIPPO_BENCH_SECONDS=10 pnpm bench` for a shorter run).
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import autocannon from "autocannon";
import { loadServeModel } from "../src/commands/serve.js";
import { prepareMiniature } from "../src/miniature/prepare.js";
import { createServer } from "../src/serve/server.js";

const seconds = Number(process.env.HIPPO_BENCH_SECONDS ?? 30);
const connections = 32;
const maxTokens = Number(process.env.HIPPO_BENCH_MAX_TOKENS ?? 8);

let dir = process.env.HIPPO_BENCH_MODEL ?? resolve("../../runs/miniature/run/07-merge/model");
let tmp: string | undefined;
if (!existsSync(join(dir, "config.json"))) {
  tmp = await mkdtemp(join(tmpdir(), "hippo-bench-serve-"));
  await prepareMiniature(tmp, { diseases: 12 });
  dir = join(tmp, "base-model");
}
const tokenizer = existsSync(join(dir, "tokenizer.json")) ? dir : join(dir, "..", "tokenizer");
const { model, dispose } = await loadServeModel(dir, { tokenizer, name: "bench" });
const server = createServer(model, { maxBatch: 32 });
const { port } = await server.listen(0);

let completionTokens = 0;
const body = JSON.stringify({
  model: "bench",
  prompt: "Question: Which drug is used to treat the disease?\n(A) a (B) b (C) c (D) d\nAnswer:",
  max_tokens: maxTokens,
  temperature: 0,
});
const result = await autocannon({
  url: `http://127.0.0.1:${port}/v1/completions`,
  method: "POST",
  headers: { "content-type": "application/json" },
  body,
  connections,
  duration: seconds,
  maxOverallRequests: 100_000,
  timeout: 60,
  setupClient: (client) => {
    client.on("body", (buf: Buffer) => {
      try {
        completionTokens +=
          (JSON.parse(buf.toString()) as { usage?: { completion_tokens?: number } }).usage
            ?.completion_tokens ?? 0;
      } catch {
        // counted as a failure by autocannon's status accounting
      }
    });
  },
});
await server.close();
dispose();
if (tmp) await rm(tmp, { recursive: true, force: true });

const failed = result.non2xx + result.errors + result.timeouts;
const cpu = cpus()[0]?.model ?? "unknown";
console.log(`\n### hippo serve under load (${cpu}, ${cpus().length} cores, Node ${process.version})\n`);
console.log(
  "| model | clients | seconds | max_tokens | requests | failed | p50 ms | p99 ms | req/s | tokens/s | batches (max size) |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
console.log(
  `| ${dir.includes("07-merge") ? "miniature (merged)" : "random miniature-shape Llama"} | ${connections} | ${seconds} | ${maxTokens} | ${result.requests.total} | ${failed} | ${result.latency.p50} | ${result.latency.p99} | ${result.requests.average} | ${(completionTokens / result.duration).toFixed(1)} | ${server.queue.stats.batches} (${server.queue.stats.maxBatchSeen}) |`,
);
if (failed > 0) process.exitCode = 1;
