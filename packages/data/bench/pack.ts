/**
 * Tokenize-and-pack throughput on the PubMedQA PQA-L contexts (1,000 abstracts) with the Llama-2 tokenizer:
 * the CPT builder's inner loop (encodeBatch of 64 documents, then packing into 1024-token blocks), without
 * file output. Prints a markdown table.
 */
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { loadTokenizer } from "@hippocrates/tokenizer";
import { createPacker, encodeMany, readCptDocuments } from "../src/cpt.js";
import { createBadRecords } from "../src/index.js";

const shared = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
const tokenizer = await loadTokenizer(`${shared}tokenizers/llama2`);
const texts: string[] = [];
for await (const d of readCptDocuments(
  { kind: "pubmedqa", path: `${shared}benchmarks/pubmedqa/ori_pqal.json` },
  createBadRecords(),
))
  texts.push(d.text);

const blockSize = 1024;
const batch = 64;
async function run() {
  const t0 = performance.now();
  const packer = createPacker({ blockSize, eosTokenId: tokenizer.eosTokenId ?? 2 });
  let tokTime = 0;
  for (let i = 0; i < texts.length; i += batch) {
    const t1 = performance.now();
    const enc = await encodeMany(tokenizer, texts.slice(i, i + batch));
    tokTime += performance.now() - t1;
    for (const ids of enc) packer.add(ids);
  }
  packer.finish();
  const total = performance.now() - t0;
  return { total, tokTime, tokens: packer.stats().tokens, blocks: packer.stats().blocks };
}

await run(); // warm-up
const runs = [];
for (let k = 0; k < 3; k++) runs.push(await run());
runs.sort((a, b) => a.total - b.total);
const med = runs[1] as (typeof runs)[number];
const chars = texts.reduce((a, t) => a + t.length, 0);
console.log(`\n### @hippocrates/data: tokenize-and-pack (PubMedQA PQA-L contexts, Llama-2 tokenizer)\n`);
console.log(
  `machine: ${cpus()[0]?.model ?? "?"} x ${cpus().length} cores, Node ${process.version}; backend: CPU (no tensors); median of 3 runs after 1 warm-up\n`,
);
console.log(
  "| documents | chars | tokens (+EOS) | block size | batch (docs) | blocks | total ms | tokenize ms | tokens/s (tokenize+pack) |",
);
console.log("|---|---|---|---|---|---|---|---|---|");
console.log(
  `| ${texts.length} | ${chars} | ${med.tokens} | ${blockSize} | ${batch} | ${med.blocks} | ${med.total.toFixed(0)} | ${med.tokTime.toFixed(0)} | ${Math.round(med.tokens / (med.total / 1000))} |`,
);
