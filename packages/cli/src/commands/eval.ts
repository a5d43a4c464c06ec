import { readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  createBarReporter,
  HippoError,
  type ScoringModel,
  silentProgress,
  writeFileAtomic,
} from "@hippocrates/core";
import { type Command, Option } from "commander";
import {
  type BackendChoice,
  ensureBackend,
  loadArtifactModel,
  loadRunTokenizer,
  parseFloatArg,
  parseIntArg,
  readJsonlRecords,
  resolveTasks,
  scoringModelFor,
} from "./shared.js";

function parseShard(v: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(v);
  if (!m)
    throw new HippoError("INVALID_ARGUMENT", "--shard must be i/n", {
      key: "--shard",
      expected: "e.g. 0/4",
      got: JSON.stringify(v),
    });
  return { index: Number(m[1]), count: Number(m[2]) };
}

interface EvalFlags {
  model?: string;
  adapter?: string;
  tokenizer?: string;
  tasks?: string;
  numFewshot?: number;
  limit?: number;
  profile: "v0.3" | "current";
  dataDir: string;
  output?: string;
  writeOut?: string;
  shard?: { index: number; count: number };
  batchSize?: number;
  maxLength?: number;
  apiKey?: string;
  concurrency?: number;
  backend: BackendChoice;
  progress: boolean;
}

export function registerEval(program: Command): void {
  const ev = program
    .command("eval")
    .description("evaluate a model on the medical benchmarks (flags named after lm-evaluation-harness)")
    // --model and --tasks are checked in the action, not with requiredOption: commander checks an
    // ancestor's mandatory options for its subcommands too, which made `hippo eval merge` demand --model.
    .option(
      "--model <dir|url>",
      "HF model folder, or the base URL of an OpenAI-compatible server (http://host:port/v1) (required)",
    )
    .option("--adapter <dir>", "PEFT adapter merged into --model")
    .option("--tokenizer <dir>", "tokenizer folder (default: the model folder; required with a URL)")
    .option(
      "--tasks <list>",
      "comma-separated task or group names (medqa_usmle, medmcqa, pubmedqa, multimedqa, ...) or task files (required)",
    )
    .option("--num-fewshot <k>", "few-shot examples", parseIntArg("--num-fewshot"))
    .option("--limit <n>", "documents per task (a fraction when < 1)", parseFloatArg("--limit"))
    .addOption(
      new Option("--profile <p>", "v0.3 (the authors' harness, no BOS) or current (today's harness)")
        .choices(["v0.3", "current"])
        .default("v0.3"),
    )
    .option("--data-dir <dir>", "folder laid out as shared/data (benchmarks/...)", "../shared/data")
    .option("--output <file>", "results JSON (lm-evaluation-harness's shape)")
    .option(
      "--write-out <dir>",
      "results.json and every request's context and continuation (samples_<task>.jsonl)",
    )
    .option("--shard <i/n>", "score only shard i of n (merge with `hippo eval merge`)", parseShard)
    .option("--batch-size <n>", "documents per model call", parseIntArg("--batch-size"))
    .option("--max-length <n>", "model length for a URL model", parseIntArg("--max-length"))
    .option("--api-key <key>", "API key for a URL model (default: $OPENAI_API_KEY)")
    .option("--concurrency <n>", "parallel requests to a URL model", parseIntArg("--concurrency"))
    .addOption(
      new Option("--backend <name>", "compute backend")
        .choices(["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"])
        .default("auto"),
    )
    .option("--no-progress", "no progress bar")
    .addHelpText(
      "after",
      "\nExamples:\n  hippo eval --model models/hippo --tasks medqa_usmle,medmcqa --limit 100 --output results.json\n  hippo eval --model http://gpu-box:8000/v1 --tokenizer models/hippo --tasks pubmedqa --shard 0/2 --write-out out/0\n  hippo eval merge out/0 out/1 --output results.json\n",
    )
    .action(async (flags: EvalFlags) => {
      for (const [key, v] of [
        ["--model", flags.model],
        ["--tasks", flags.tasks],
      ] as const)
        if (!v)
          throw new HippoError("INVALID_ARGUMENT", `required option ${key} not specified`, {
            key,
            expected: "a value",
            got: "nothing",
          });
      const f = flags as EvalFlags & { model: string; tasks: string };
      const evalPkg = await import("@hippocrates/eval");
      const isUrl = /^https?:\/\//.test(f.model);
      if (isUrl && !f.tokenizer)
        throw new HippoError("INVALID_ARGUMENT", "--tokenizer is required when --model is a URL", {
          key: "--tokenizer",
        });
      await ensureBackend({ backend: f.backend, threads: undefined, tokenizer: "" });
      const tok = await loadRunTokenizer(resolve(f.tokenizer ?? f.model));
      let model: ScoringModel;
      let dispose = () => {};
      if (isUrl) {
        const name = f.model.replace(/\/+$/, "");
        model = evalPkg.createOpenAICompletionsModel({
          baseUrl: name,
          model: await remoteModelId(name, f.apiKey),
          maxLength: f.maxLength ?? 2048,
          ...(f.apiKey || process.env.OPENAI_API_KEY
            ? { apiKey: f.apiKey ?? process.env.OPENAI_API_KEY }
            : {}),
          ...(f.concurrency ? { concurrency: f.concurrency } : {}),
        });
      } else {
        const artifact = f.adapter
          ? ({
              kind: "peft-adapter",
              path: resolve(f.adapter),
              base: { kind: "hf-model", path: resolve(f.model) },
            } as const)
          : ({ kind: "hf-model", path: resolve(f.model) } as const);
        const lm = await loadArtifactModel(artifact);
        dispose = () => lm.dispose();
        model = await scoringModelFor(lm, f.model, f.batchSize);
      }
      try {
        const output = await evalPkg.evaluate({
          model,
          tokenizer: tok,
          tasks: await resolveTasks(
            f.tasks
              .split(",")
              .map((t) => t.trim())
              .filter(Boolean),
          ),
          ...(f.numFewshot !== undefined ? { numFewshot: f.numFewshot } : {}),
          ...(f.limit !== undefined ? { limit: f.limit } : {}),
          profile: f.profile,
          dataDir: resolve(f.dataDir),
          ...(f.writeOut
            ? { writeOut: resolve(f.writeOut), cacheDir: join(resolve(f.writeOut), "cache") }
            : {}),
          ...(f.shard ? { shard: f.shard } : {}),
          ...(f.batchSize ? { batchSize: f.batchSize } : {}),
          progress: f.progress ? createBarReporter() : silentProgress,
        });
        if (f.output)
          await writeFileAtomic(resolve(f.output), `${JSON.stringify(output.results, null, 2)}\n`);
        process.stdout.write(`${formatResults(output.results.results)}\n`);
      } finally {
        dispose();
      }
    });

  ev.command("merge")
    .description("combine the --write-out folders of shards (--shard i/n) into the results of one run")
    .argument("<dirs...>", "write-out folders of the shards")
    .option("--output <file>", "merged results JSON")
    .option("--write-out <dir>", "merged results.json and samples")
    .addHelpText("after", "\nExample:\n  hippo eval merge out/0 out/1 --output results.json\n")
    .action(async (dirs: string[], _local: unknown, cmd: Command) => {
      // `eval` has its own --output/--write-out, and commander gives a flag to the parent when both
      // define it, so read them with the parent's values merged in.
      const f = cmd.optsWithGlobals<{ output?: string; writeOut?: string }>();
      const evalPkg = await import("@hippocrates/eval");
      const { readJsonFile } = await import("@hippocrates/core");
      const outputs = [];
      for (const d of dirs) {
        const results = (await readJsonFile(join(resolve(d), "results.json"))) as Parameters<
          typeof evalPkg.mergeShards
        >[0][number]["results"];
        const samples: Record<string, unknown[]> = {};
        for (const file of (await readdir(resolve(d))).filter(
          (n) => n.startsWith("samples_") && n.endsWith(".jsonl"),
        )) {
          samples[file.slice(8, -6)] = await readJsonlRecords(join(resolve(d), file));
        }
        outputs.push({ results, samples } as Parameters<typeof evalPkg.mergeShards>[0][number]);
      }
      const merged = evalPkg.mergeShards(outputs);
      if (f.output) await writeFileAtomic(resolve(f.output), `${JSON.stringify(merged.results, null, 2)}\n`);
      if (f.writeOut) await evalPkg.writeOutput(resolve(f.writeOut), merged);
      process.stdout.write(`${formatResults(merged.results.results)}\n`);
    });
}

async function remoteModelId(baseUrl: string, apiKey?: string): Promise<string> {
  try {
    const res = await fetch(`${baseUrl}/models`, {
      headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
    });
    const body = (await res.json()) as { data?: { id?: string }[] };
    const id = body.data?.[0]?.id;
    if (typeof id === "string") return id;
  } catch {
    // fall through
  }
  throw new HippoError("HTTP", "could not read the model id from /models", { file: `${baseUrl}/models` });
}

function formatResults(results: Record<string, Record<string, unknown>>): string {
  const rows = Object.entries(results).map(([task, m]) => {
    const f = (k: string) => (typeof m[k] === "number" ? (100 * (m[k] as number)).toFixed(1) : "—");
    return `| ${task} | ${f("acc")} ± ${f("acc_stderr")} | ${f("acc_norm")} |`;
  });
  return ["| task | acc % | acc_norm % |", "|---|---:|---:|", ...rows].join("\n");
}
