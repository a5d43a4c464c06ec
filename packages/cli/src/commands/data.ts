/** `hippo data {cpt,sft,preference}`: the data package's builders from a YAML/JSON config. */
import { readFile } from "node:fs/promises";
import { dirname, extname, isAbsolute, resolve } from "node:path";
import { createBarReporter, parseJsonSafe } from "@hippocrates/core";
import type { Command } from "commander";
import { parseYaml } from "../config/load.js";
import { loadRunTokenizer } from "./shared.js";

/** A data config file (JSON, or YAML), its paths rebased onto its folder; the builder's schema checks it. */
async function readConfig(file: string): Promise<Record<string, unknown>> {
  const abs = resolve(file);
  const text = await readFile(abs, "utf8");
  const config = (extname(abs) === ".json" ? parseJsonSafe(text, abs) : parseYaml(text, abs)) as Record<
    string,
    unknown
  >;
  return rebase(config, dirname(abs));
}

/** A builder's summary, as the command's output. */
const printSummary = (summary: unknown) => process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);

/** Paths in a data config are relative to the config file. */
function rebase(config: Record<string, unknown>, base: string): Record<string, unknown> {
  const abs = (p: unknown) => (typeof p === "string" && !isAbsolute(p) ? resolve(base, p) : p);
  const out: Record<string, unknown> = { ...config };
  for (const k of ["outDir", "input", "cachePath"]) if (k in out) out[k] = abs(out[k]);
  if (Array.isArray(out.decontaminateAgainst)) out.decontaminateAgainst = out.decontaminateAgainst.map(abs);
  if (Array.isArray(out.sources))
    out.sources = out.sources.map((s) =>
      s && typeof s === "object" ? { ...(s as object), path: abs((s as { path?: unknown }).path) } : s,
    );
  return out;
}

const OVERWRITE_HELP =
  "replace an outDir that holds other files than an earlier output of this command (never a file, the " +
  "current folder, or a folder holding the inputs, the config or the tokenizer)";

export function registerData(program: Command): void {
  const data = program
    .command("data")
    .description("build training data: CPT blocks, SFT instruction mixtures, DPO preference pairs");
  data
    .command("cpt")
    .description(
      "documents (guidelines JSONL, PMC-Patients, PubMedQA contexts, text) -> dedup -> tokens -> packed blocks",
    )
    .argument("<config>", "YAML/JSON config (see the data package README: sources, outDir, blockSize, ...)")
    .requiredOption("--tokenizer <dir|id>", "tokenizer folder or Hub id (org/name[@rev])")
    .option("--overwrite", OVERWRITE_HELP)
    .addHelpText(
      "after",
      "\nExample config:\n  sources: [{kind: pubmedqa, path: ../shared/data/benchmarks/pubmedqa/ori_pqal.json}]\n  outDir: data/cpt\n  blockSize: 1024\n",
    )
    .action(async (file: string, f: { tokenizer: string; overwrite?: boolean }) => {
      const d = await import("@hippocrates/data");
      const config = d.parseDataConfig(d.cptConfigSchema, await readConfig(file), file);
      const summary = await d.buildCptDataset(
        {
          ...d.cptOptionsFromConfig(config, await loadRunTokenizer(f.tokenizer)),
          overwrite: f.overwrite === true,
          protect: [resolve(file), resolve(f.tokenizer)],
        },
        createBarReporter(),
      );
      printSummary(summary);
    });
  data
    .command("sft")
    .description(
      "instruction sources (Alpaca, ShareGPT, chat, MedQA/MedMCQA/PubMedQA train) -> weighted mixture -> decontaminated JSONL",
    )
    .argument("<config>", "YAML/JSON config (sources with weights or counts, outDir, template, ...)")
    .option("--tokenizer <dir|id>", "also write tokenized.jsonl with this tokenizer (folder or Hub id)")
    .option("--overwrite", OVERWRITE_HELP)
    .addHelpText(
      "after",
      "\nExample config:\n  sources: [{format: medqa, path: data/medqa_train.jsonl, count: all}]\n  outDir: data/sft\n",
    )
    .action(async (file: string, f: { tokenizer?: string; overwrite?: boolean }) => {
      const d = await import("@hippocrates/data");
      const config = d.parseDataConfig(d.sftConfigSchema, await readConfig(file), file);
      const tok = f.tokenizer ? await loadRunTokenizer(f.tokenizer) : undefined;
      const summary = await d.buildSftDataset(
        {
          ...d.sftOptionsFromConfig(config, tok),
          overwrite: f.overwrite === true,
          protect: [resolve(file), ...(f.tokenizer ? [resolve(f.tokenizer)] : [])],
        },
        createBarReporter(),
      );
      printSummary(summary);
    });
  data
    .command("preference")
    .description(
      "iCliniq-style questions -> judge model over an OpenAI-compatible endpoint -> DPO pairs (cached, resumable)",
    )
    .argument("<config>", "YAML/JSON config (input, outDir, model, judge: {baseUrl, concurrency, ...})")
    .option("--overwrite", OVERWRITE_HELP)
    .addHelpText(
      "after",
      "\nThe API key comes from $OPENAI_API_KEY. Example config:\n  input: data/icliniq.jsonl\n  outDir: data/dpo\n  model: gpt-4\n  judge: {baseUrl: http://127.0.0.1:8000/v1, concurrency: 4}\n",
    )
    .action(async (file: string, f: { overwrite?: boolean }) => {
      const d = await import("@hippocrates/data");
      const config = d.parseDataConfig(d.preferenceConfigSchema, await readConfig(file), file);
      const summary = await d.buildPreferenceDataset(
        {
          ...d.preferenceOptionsFromConfig(config),
          overwrite: f.overwrite === true,
          protect: [resolve(file)],
        },
        createBarReporter(),
      );
      printSummary(summary);
    });
}
