/**
 * Tokenizer throughput on the 1,273 MedQA test questions: `encodeBatch` (the Rust binding encodes the batch
 * on its own thread pool) against one `encode` call per question awaited in turn, for both tokenizers.
 * Prints a markdown table. Usage: pnpm bench [-- --repeats N]
 */
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { loadTokenizer } from "../src/index.js";

const DATA = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
const repeatsArg = process.argv.indexOf("--repeats");
const REPEATS = repeatsArg > 0 ? Number(process.argv[repeatsArg + 1]) : 3;

const questions = readFileSync(`${DATA}benchmarks/medqa/medqa_us_4options_test.jsonl`, "utf8")
  .split("\n")
  .filter((line) => line.trim() !== "")
  .map((line) => (JSON.parse(line) as { question: string }).question);

/** Best of `REPEATS` runs (the least disturbed by other load on the machine), after one warm-up run. */
async function best(run: () => Promise<number[][]>): Promise<{ seconds: number; tokens: number }> {
  let tokens = (await run()).reduce((n, ids) => n + ids.length, 0);
  let seconds = Number.POSITIVE_INFINITY;
  for (let i = 0; i < REPEATS; i++) {
    const start = process.hrtime.bigint();
    const out = await run();
    seconds = Math.min(seconds, Number(process.hrtime.bigint() - start) / 1e9);
    tokens = out.reduce((n, ids) => n + ids.length, 0);
  }
  return { seconds, tokens };
}

const rows: string[] = [];
for (const [name, dir] of [
  ["Llama-2", `${DATA}tokenizers/llama2`],
  ["Mistral-7B-v0.1", `${DATA}tokenizers/mistral-7b-v0.1`],
] as const) {
  const tok = await loadTokenizer(dir);
  const batch = await best(() => tok.encodeBatch(questions));
  const sequential = await best(async () => {
    const out: number[][] = [];
    for (const q of questions) out.push(await tok.encode(q));
    return out;
  });
  for (const [mode, r] of [
    ["encodeBatch (1,273 texts)", batch],
    ["encode, one at a time", sequential],
  ] as const) {
    const tps = Math.round(r.tokens / r.seconds).toLocaleString("en-US");
    rows.push(
      `| ${name} | ${mode} | ${r.tokens.toLocaleString("en-US")} | ${(r.seconds * 1000).toFixed(1)} | ${tps} |`,
    );
  }
}

const cpu = cpus();
console.log(`Tokenizer throughput, MedQA US 4-option test questions (${questions.length}), BOS added`);
console.log(
  `machine: ${cpu[0]?.model ?? "unknown CPU"}, ${cpu.length} cores, load average ${loadavg()[0]?.toFixed(1)}; ` +
    `Node ${process.version}; tokenizers 0.23.2 (Rust, batch threads: RAYON_NUM_THREADS=${process.env.RAYON_NUM_THREADS ?? "unset (all cores)"}); ` +
    `best of ${REPEATS} after 1 warm-up\n`,
);
console.log("| tokenizer | mode | tokens | ms | tokens/s |");
console.log("|---|---|---:|---:|---:|");
for (const row of rows) console.log(row);
