/**
 * `hippo eval`, with lm-evaluation-harness's command line: a command pasted from its README runs.
 *
 *   hippo eval --model hf --model_args pretrained=models/hippo,dtype=float32 --tasks medqa_4options \
 *     --num_fewshot 5 --batch_size 8 --output_path out --log_samples
 *   hippo eval --model local-completions --model_args base_url=http://gpu:8000/v1/completions,model=hippo,tokenizer=models/hippo ...
 *
 * Flags as the harness spells them (`lm_eval/__main__.py`): --model, --model_args, --tasks, --num_fewshot,
 * --batch_size N|auto, --output_path, --log_samples, --limit, --seed, --write_out, --include_path,
 * --use_cache, --device (accepted; the backend is --backend here). Ours beside them: --profile, --data-dir,
 * --shard, --backend. The earlier spellings (--model DIR|URL, --adapter, --tokenizer, --num-fewshot,
 * --batch-size, --output FILE, --write-out DIR, --max-length, --api-key, --concurrency) stay accepted and are
 * hidden from the help.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, extname, join, resolve } from "node:path";
import {
  HippoError,
  type ModelArtifact,
  type ProgressReporter,
  readJsonFile,
  type ScoringModel,
  unknownNameMessage,
  writeFileAtomic,
} from "@hippocrates/core";
import type { HubRevision, ModelInfo } from "@hippocrates/eval";
import { type Command, Option } from "commander";
import {
  type BackendChoice,
  ensureBackend,
  hubProgress,
  loadArtifactModel,
  loadRunTokenizer,
  modelArtifact,
  parseFloatArg,
  parseIntArg,
  type Resolved,
  resolveSource,
  resolveTokenizer,
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
  model_args?: string;
  tasks?: string;
  num_fewshot?: number;
  batch_size?: string;
  output_path?: string;
  log_samples?: boolean;
  limit?: number;
  seed?: string;
  write_out?: boolean;
  include_path?: string;
  use_cache?: string;
  device?: string;
  profile: "v0.3" | "current";
  dataDir?: string;
  shard?: { index: number; count: number };
  backend: BackendChoice;
  progress: boolean;
  // Earlier spellings.
  adapter?: string;
  tokenizer?: string;
  numFewshot?: number;
  batchSize?: number;
  output?: string;
  writeOut?: string;
  maxLength?: number;
  apiKey?: string;
  concurrency?: number;
}

/** `lm_eval.utils.simple_parse_args_string`: `k1=v1,k2=v2` (a value may hold `=`). */
export function parseModelArgs(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of (s ?? "").trim().split(",").filter(Boolean)) {
    const [k, ...rest] = arg.split("=");
    out[(k as string).trim()] = rest.join("=");
  }
  return out;
}

/** `model_args` keys per `--model`, as lm-evaluation-harness's HFLM and LocalCompletionsAPI take them. */
const MODEL_ARGS: Record<"hf" | "local-completions", readonly string[]> = {
  hf: [
    "pretrained",
    "revision",
    "dtype",
    "tokenizer",
    "peft",
    "max_length",
    "add_bos_token",
    "batch_size",
    "trust_remote_code",
    "device",
  ],
  "local-completions": [
    "base_url",
    "model",
    "tokenizer",
    "num_concurrent",
    "max_retries",
    "max_length",
    "tokenized_requests",
    "tokenizer_backend",
    "timeout",
    "add_bos_token",
    "batch_size",
  ],
};
/** `--model` names of the harness's registry that mean the same model classes. */
const MODEL_TYPES: Record<string, "hf" | "local-completions"> = {
  hf: "hf",
  "hf-auto": "hf",
  huggingface: "hf",
  "local-completions": "local-completions",
};

function argError(key: string, reason: string, expected?: string, got?: string): HippoError {
  return new HippoError("INVALID_ARGUMENT", reason, { key, expected, got });
}

function checkArgs(type: "hf" | "local-completions", args: Record<string, string>): void {
  for (const k of Object.keys(args))
    if (!MODEL_ARGS[type].includes(k))
      throw argError(
        "--model_args",
        unknownNameMessage(`model_args key for --model ${type}`, k, MODEL_ARGS[type]),
        MODEL_ARGS[type].join(", "),
      );
}

function intArg(key: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw argError(`--model_args ${key}`, `${key} must be a positive integer`, undefined, v);
  return n;
}

function boolArg(key: string, v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (/^true$/i.test(v)) return true;
  if (/^false$/i.test(v)) return false;
  throw argError(`--model_args ${key}`, `${key} must be True or False`, "True or False", v);
}

/** `--seed N` (every seed) or `--seed a,b,c,d` (python, numpy, torch, few-shot; "None" allowed). */
function fewshotSeedOf(seed: string | undefined): number | undefined {
  if (seed === undefined) return undefined;
  const parts = seed.split(",").map((s) => s.trim());
  if (parts.length !== 1 && parts.length !== 4)
    throw argError("--seed", "--seed takes one integer or four comma-separated values", "N or a,b,c,d", seed);
  const v = parts.at(-1) as string;
  if (v === "None") return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw argError("--seed", "seeds must be integers or None", undefined, seed);
  return n;
}

const note = (m: string) => process.stderr.write(`note: ${m}\n`);

/** The clock of the results: SOURCE_DATE_EPOCH (seconds) when set, for reproducible files. */
function clock(): () => number {
  const e = process.env.SOURCE_DATE_EPOCH;
  if (e === undefined || e === "") return Date.now;
  const s = Number(e);
  if (!Number.isFinite(s))
    throw argError("SOURCE_DATE_EPOCH", "SOURCE_DATE_EPOCH must be a number of seconds", undefined, e);
  return () => s * 1000;
}

interface ModelChoice {
  source: string;
  args: string;
  name: string;
  load(progress: ProgressReporter): Promise<{
    model: ScoringModel;
    tokenizerDir: string;
    dispose(): void;
    docsInFlight: number;
    /** Where the weights, adapter and tokenizer came from on the Hub, for the results' `config`. */
    hub: ModelInfo["hub"];
  }>;
  bos?: "bos" | "none";
}

const revisionOf = (r: Resolved | undefined): HubRevision | null =>
  r?.hub ? { repo: r.hub.repo, revision: r.hub.revision, commit: r.hub.commit } : null;

/**
 * The local model of `--model hf` (`pretrained=`, `revision=`, `peft=`, `tokenizer=`) or of the earlier
 * `--model DIR --adapter --tokenizer`: each a folder or a Hub id, resolved through the Hugging Face cache.
 */
async function loadLocal(
  o: {
    pretrained: string;
    revision?: string;
    peft?: string;
    tokenizer?: string;
    rows?: number;
    maxLength?: number;
  },
  /** What each is called in errors: the model_args key, or the earlier flag. */
  flags: { pretrained: string; peft: string; tokenizer: string },
  progress: ProgressReporter,
) {
  const base = await resolveSource(o.pretrained, "model", {
    flag: flags.pretrained,
    revision: o.revision,
    progress,
  });
  const peft =
    o.peft === undefined ? undefined : await resolveSource(o.peft, "adapter", { flag: flags.peft, progress });
  const tok =
    o.tokenizer === undefined
      ? await resolveTokenizer(undefined, { name: o.pretrained, resolved: base }, progress)
      : await resolveSource(o.tokenizer, "tokenizer", { flag: flags.tokenizer, progress });
  const baseArtifact = modelArtifact(base);
  const artifact: ModelArtifact = peft
    ? { kind: "peft-adapter", path: peft.path, base: baseArtifact }
    : baseArtifact;
  const lm = await loadArtifactModel(artifact);
  const scorer = await scoringModelFor(lm, o.pretrained, o.rows);
  // max_length: the harness's HFLM truncates inputs to it; the eval truncates requests to the model's.
  const model: ScoringModel =
    o.maxLength === undefined
      ? scorer
      : {
          name: scorer.name,
          maxLength: o.maxLength,
          logLikelihood: (r, opts) => scorer.logLikelihood(r, opts),
        };
  const hub: ModelInfo["hub"] = { model: revisionOf(base), tokenizer: revisionOf(tok) };
  if (peft) hub.peft = revisionOf(peft);
  return { model, tokenizerDir: tok.path, dispose: () => lm.dispose(), docsInFlight: o.rows ?? 1, hub };
}

async function chooseModel(f: EvalFlags & { model: string }): Promise<ModelChoice> {
  const type = MODEL_TYPES[f.model];
  const harness = f.model_args !== undefined || (type !== undefined && !existsSync(f.model));
  const batch = f.batch_size ?? (f.batchSize !== undefined ? String(f.batchSize) : undefined);
  const batchN = batch === undefined || /^auto(:\d+)?$/.test(batch) ? undefined : Number(batch);
  if (batchN !== undefined && !(Number.isInteger(batchN) && batchN >= 1))
    throw argError(
      "--batch_size",
      "--batch_size must be a positive integer or auto",
      "N, auto or auto:N",
      batch,
    );
  if (harness) {
    if (!type)
      throw argError(
        "--model",
        unknownNameMessage("--model", f.model, Object.keys(MODEL_TYPES)),
        Object.keys(MODEL_TYPES).join(", "),
      );
    const args = parseModelArgs(f.model_args);
    checkArgs(type, args);
    const add = boolArg("add_bos_token", args.add_bos_token);
    const bos = add === undefined ? undefined : add ? ("bos" as const) : ("none" as const);
    if (args.device !== undefined || f.device !== undefined)
      note("device: the compute backend is chosen with --backend here");
    if (type === "hf") {
      const pretrained = args.pretrained;
      if (!pretrained)
        throw argError(
          "--model_args",
          "--model hf needs pretrained=<model folder or Hub id>",
          "pretrained=...",
          f.model_args,
        );
      if (args.dtype !== undefined && !["auto", "float32"].includes(args.dtype))
        note(`dtype=${args.dtype}: weights are computed in float32 here`);
      if (args.trust_remote_code !== undefined)
        note("trust_remote_code has no effect (no model code is run)");
      // The harness names the run after peft= when given, else pretrained= (`GeneralConfigTracker._get_model_name`).
      const name = args.peft ?? pretrained;
      const rows = intArg("batch_size", args.batch_size) ?? batchN;
      return {
        source: f.model,
        args: f.model_args ?? "",
        name,
        ...(bos ? { bos } : {}),
        load: (progress) =>
          loadLocal(
            {
              pretrained,
              revision: args.revision,
              peft: args.peft,
              tokenizer: args.tokenizer,
              rows,
              maxLength: intArg("max_length", args.max_length),
            },
            { pretrained: "pretrained=", peft: "peft=", tokenizer: "tokenizer=" },
            progress,
          ),
      };
    }
    const baseUrl = args.base_url;
    if (!baseUrl)
      throw argError(
        "--model_args",
        "--model local-completions needs base_url=<server>/v1/completions",
        "base_url=...",
        f.model_args,
      );
    if (!args.tokenizer)
      throw argError(
        "--model_args",
        "--model local-completions needs tokenizer=<tokenizer folder or Hub id> (requests go as token ids)",
        "tokenizer=...",
        f.model_args,
      );
    if (boolArg("tokenized_requests", args.tokenized_requests) === false)
      throw argError(
        "--model_args",
        "tokenized_requests=False is not supported: prompts go to the server as token ids",
        "True",
        "False",
      );
    if (args.tokenizer_backend !== undefined && args.tokenizer_backend !== "huggingface")
      throw argError(
        "--model_args",
        "tokenizer_backend must be huggingface (a tokenizer.json folder)",
        "huggingface",
        args.tokenizer_backend,
      );
    const concurrent = intArg("num_concurrent", args.num_concurrent) ?? f.concurrency ?? 1;
    return {
      source: f.model,
      args: f.model_args ?? "",
      name: args.model ?? "",
      ...(bos ? { bos } : {}),
      async load(progress) {
        const evalPkg = await import("@hippocrates/eval");
        const tok = await resolveSource(args.tokenizer as string, "tokenizer", {
          flag: "tokenizer=",
          progress,
        });
        const url = baseUrl.replace(/\/+$/, "");
        const apiKey = f.apiKey ?? process.env.OPENAI_API_KEY;
        const model = evalPkg.createOpenAICompletionsModel({
          baseUrl: url,
          model: args.model ?? (await remoteModelId(url, apiKey)),
          maxLength: intArg("max_length", args.max_length) ?? f.maxLength ?? 2048,
          apiKey,
          concurrency: concurrent,
          batchSize: intArg("batch_size", args.batch_size) ?? batchN ?? 16,
          retries: args.max_retries === undefined ? 3 : Number(args.max_retries),
          timeoutMs: args.timeout === undefined ? 120_000 : Number(args.timeout) * 1000,
        });
        return {
          model,
          tokenizerDir: tok.path,
          dispose: () => {},
          docsInFlight: concurrent,
          hub: { tokenizer: revisionOf(tok) },
        };
      },
    };
  }
  // The earlier spelling: --model DIR or --model URL (an OpenAI-compatible server).
  const isUrl = /^https?:\/\//.test(f.model);
  if (isUrl && !f.tokenizer) throw argError("--tokenizer", "--tokenizer is required when --model is a URL");
  return {
    source: isUrl ? "local-completions" : "hf",
    args: isUrl ? `base_url=${f.model}` : `pretrained=${f.model}${f.adapter ? `,peft=${f.adapter}` : ""}`,
    name: isUrl ? "" : (f.adapter ?? f.model),
    async load(progress) {
      if (isUrl) {
        const evalPkg = await import("@hippocrates/eval");
        const tok = await resolveSource(f.tokenizer as string, "tokenizer", {
          flag: "--tokenizer",
          progress,
        });
        const url = f.model.replace(/\/+$/, "");
        const apiKey = f.apiKey ?? process.env.OPENAI_API_KEY;
        const model = evalPkg.createOpenAICompletionsModel({
          baseUrl: url,
          model: await remoteModelId(url.replace(/\/completions$/, ""), apiKey),
          maxLength: f.maxLength ?? 2048,
          apiKey,
          concurrency: f.concurrency ?? 4,
        });
        return {
          model,
          tokenizerDir: tok.path,
          dispose: () => {},
          docsInFlight: batchN ?? 1,
          hub: { tokenizer: revisionOf(tok) },
        };
      }
      return loadLocal(
        { pretrained: f.model, peft: f.adapter, tokenizer: f.tokenizer, rows: batchN },
        { pretrained: "--model", peft: "--adapter", tokenizer: "--tokenizer" },
        progress,
      );
    },
  };
}

/** `--include_path DIR` (task files of a folder, as the harness's) and task files named in --tasks. */
async function taskRegistry(includePath: string | undefined, tasks: string[]) {
  const evalPkg = await import("@hippocrates/eval");
  const registry = evalPkg.createTaskRegistry();
  const addFile = async (file: string) => {
    const entry = evalPkg.parseTaskFile(await readJsonFile(file), file);
    registry.registerEntry(entry);
    return entry.kind === "task" ? entry.task.name : entry.group.name;
  };
  if (includePath) {
    const dir = resolve(includePath);
    const { readdir } = await import("node:fs/promises");
    // Recursive, as the harness's --include_path.
    const walk = async (d: string): Promise<string[]> => {
      const out: string[] = [];
      for (const e of await readdir(d, { withFileTypes: true }))
        out.push(...(e.isDirectory() ? await walk(join(d, e.name)) : [join(d, e.name)]));
      return out;
    };
    for (const file of (await walk(dir)).filter((p) => p.endsWith(".json")).sort()) await addFile(file);
  }
  const names: string[] = [];
  for (const t of tasks) names.push(extname(t) === ".json" || existsSync(t) ? await addFile(resolve(t)) : t);
  return { registry, names };
}

export function registerEval(program: Command): void {
  const hidden = (flags: string, description: string, parse?: (v: string) => unknown) => {
    const o = new Option(flags, description).hideHelp();
    return parse ? o.argParser(parse) : o;
  };
  const ev = program
    .command("eval")
    .description(
      "evaluate a model on the medical benchmarks, with lm-evaluation-harness's flags and output files",
    )
    // --model and --tasks are checked in the action, not with requiredOption: commander checks an
    // ancestor's mandatory options for its subcommands too, which made `hippo eval merge` demand --model.
    .option(
      "--model <type>",
      "hf (an HF model: a folder or a Hub id) or local-completions (an OpenAI-compatible server) (required)",
    )
    .option(
      "--model_args <k=v,...>",
      "hf: pretrained=DIR|ORG/NAME,revision=,dtype=,tokenizer=,peft=,max_length=,add_bos_token=; local-completions: base_url=URL,model=,tokenizer=DIR|ORG/NAME,num_concurrent=,max_retries=,max_length=",
    )
    .option(
      "--tasks <list>",
      "comma-separated task or group names (multimedqa, medqa_4options, medqa_usmle, ...) or task files (required)",
    )
    .option("--num_fewshot <k>", "few-shot examples", parseIntArg("--num_fewshot"))
    .option(
      "--batch_size <n|auto>",
      "hf: rows per forward pass and documents at once; local-completions: prompts per request",
    )
    .option(
      "--output_path <dir>",
      "write <dir>/<model>/results_<date>.json (a path ending in .json: <stem>_<date>.json beside it)",
    )
    .option("--log_samples", "also write samples_<task>_<date>.jsonl beside the results")
    .option("--limit <n>", "documents per task (a fraction when < 1)", parseFloatArg("--limit"))
    .option("--seed <n|a,b,c,d>", "random seeds; the few-shot seed is the last (default 0,1234,1234,1234)")
    .option("--write_out", "print each task's first prompt and target")
    .option("--include_path <dir>", "folder of task files (JSON) whose tasks and groups --tasks can name")
    .option(
      "--use_cache <dir>",
      "request cache folder (resume an interrupted run); default <output folder>/.hippo-cache",
    )
    .option("--device <device>", "accepted for compatibility; the backend is chosen with --backend")
    .addOption(
      new Option(
        "--profile <p>",
        "v0.3 (the authors' harness, no BOS) or current (lm-evaluation-harness 0.4)",
      )
        .choices(["v0.3", "current"])
        .default("v0.3"),
    )
    .option(
      "--data-dir <dir>",
      "local copies of the benchmarks, laid out as shared/data (benchmarks/...); default: each task's Hub dataset, fetched into the Hugging Face cache",
    )
    .option("--shard <i/n>", "score only shard i of n (merge with `hippo eval merge`)", parseShard)
    .addOption(
      new Option("--backend <name>", "compute backend")
        .choices(["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"])
        .default("auto"),
    )
    .option("--no-progress", "no progress bar")
    .addOption(hidden("--adapter <dir>", "PEFT adapter over --model (model_args peft=)"))
    .addOption(hidden("--tokenizer <dir>", "tokenizer folder (model_args tokenizer=)"))
    .addOption(hidden("--num-fewshot <k>", "= --num_fewshot", parseIntArg("--num-fewshot")))
    .addOption(hidden("--batch-size <n>", "= --batch_size", parseIntArg("--batch-size")))
    .addOption(hidden("--output <file>", "the results JSON, written to this file"))
    .addOption(hidden("--write-out <dir>", "= --output_path DIR --log_samples"))
    .addOption(hidden("--max-length <n>", "model_args max_length=", parseIntArg("--max-length")))
    .addOption(hidden("--api-key <key>", "API key for a server (default $OPENAI_API_KEY)"))
    .addOption(hidden("--concurrency <n>", "model_args num_concurrent=", parseIntArg("--concurrency")))
    .addHelpText(
      "after",
      "\nModels, tokenizers and adapters are folders or Hugging Face Hub ids (org/name, revision=...); datasets come from the Hub\nunless --data-dir is given. HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE=1 work as for Python's tools.\n\nExamples:\n  hippo eval --model hf --model_args pretrained=meta-llama/Llama-2-7b-hf --tasks medqa_usmle,medmcqa,pubmedqa --output_path out --log_samples\n  hippo eval --model hf --model_args pretrained=models/hippo --tasks medqa_usmle,medmcqa --limit 100 --data-dir ../shared/data --output_path out\n  hippo eval --model hf --model_args pretrained=models/hippo --tasks multimedqa --profile current --num_fewshot 5 --output_path out\n  hippo eval --model local-completions --model_args base_url=http://gpu-box:8000/v1/completions,model=hippo,tokenizer=models/hippo,num_concurrent=4 --tasks pubmedqa --shard 0/2 --output_path out/0 --log_samples\n  hippo eval merge out/0 out/1 --output_path merged --log_samples\n",
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
      for (const [a, b, key] of [
        [f.num_fewshot, f.numFewshot, "--num_fewshot"],
        [f.output_path, f.writeOut, "--output_path"],
      ] as const)
        if (a !== undefined && b !== undefined && a !== b)
          throw argError(key, `${key} and its earlier spelling disagree`, String(a), String(b));
      const evalPkg = await import("@hippocrates/eval");
      const choice = await chooseModel(f);
      const { registry, names } = await taskRegistry(
        f.include_path,
        f.tasks
          .split(",")
          .map((t) => t.trim())
          .filter(Boolean),
      );
      const outputPath = f.output_path ?? f.writeOut;
      const logSamples = f.log_samples === true || f.writeOut !== undefined;
      const fewshotSeed = fewshotSeedOf(f.seed);
      // The request cache lives beside the results (a rerun of the same command resumes), or at --use_cache.
      let cacheDir = f.use_cache ? resolve(f.use_cache) : undefined;
      // A bad output path is refused before anything is created or loaded.
      if (outputPath)
        await evalPkg.outputFiles(resolve(outputPath), evalPkg.sanitizeModelName(choice.name), "check", []);
      if (!cacheDir && outputPath) {
        const p = resolve(outputPath);
        const folder =
          extname(p) === ".json" && !(existsSync(p) && statSync(p).isDirectory())
            ? dirname(p)
            : join(p, evalPkg.sanitizeModelName(choice.name));
        cacheDir = join(folder, ".hippo-cache");
      }
      await ensureBackend({ backend: f.backend, threads: undefined, tokenizer: "" });
      const progress = hubProgress(f.progress);
      const loaded = await choice.load(progress);
      try {
        const tok = await loadRunTokenizer(loaded.tokenizerDir);
        const output = await evalPkg.evaluate({
          model: loaded.model,
          tokenizer: tok,
          tasks: names,
          registry,
          numFewshot: f.num_fewshot ?? f.numFewshot,
          limit: f.limit,
          profile: f.profile,
          // A data folder when given (local copies win); else each task's Hub dataset, never the working directory.
          dataDir: f.dataDir === undefined ? undefined : resolve(f.dataDir),
          hub: { progress },
          cacheDir,
          outputPath: outputPath ? resolve(outputPath) : undefined,
          logSamples,
          writeOut: f.write_out === true,
          shard: f.shard,
          batchSize: loaded.docsInFlight,
          bos: choice.bos,
          // --seed sets the harness's few-shot seed (current profile); the v0.3 stream's 42 is its protocol.
          fewshotSeed,
          modelInfo: { source: choice.source, args: choice.args, name: choice.name, hub: loaded.hub },
          progress,
          now: clock(),
        });
        if (f.output) await writeFileAtomic(resolve(f.output), evalPkg.resultsText(output.results));
        process.stdout.write(`${formatResults(output.results)}\n`);
        if (output.files) process.stdout.write(`results: ${output.files.results}\n`);
      } finally {
        loaded.dispose();
      }
    });

  ev.command("merge")
    .description("combine the output folders of shards (--shard i/n) into the output of one run")
    .argument("<paths...>", "output paths (or results files) of the shards, written with --log_samples")
    .option("--output_path <dir>", "write the merged results (and with --log_samples the samples) there")
    .option("--log_samples", "also write the merged samples")
    .addOption(hidden("--output <file>", "the merged results JSON, written to this file"))
    .addOption(hidden("--write-out <dir>", "= --output_path DIR --log_samples"))
    .addHelpText("after", "\nExample:\n  hippo eval merge out/0 out/1 --output_path merged --log_samples\n")
    .action(async (paths: string[], _local: unknown, cmd: Command) => {
      // `eval` has flags of the same names, and commander gives a flag to the parent when both define it,
      // so read them with the parent's values merged in.
      const f = cmd.optsWithGlobals<{
        output_path?: string;
        log_samples?: boolean;
        output?: string;
        writeOut?: string;
      }>();
      const evalPkg = await import("@hippocrates/eval");
      const outputs = [];
      for (const p of paths) {
        const out = await evalPkg.readOutput(p);
        for (const task of Object.keys(out.results.configs))
          if (!out.samples[task])
            throw new HippoError(
              "NOT_FOUND",
              `no samples of ${task} beside the results: write shards with --log_samples`,
              {
                file: out.files.results,
                key: task,
              },
            );
        outputs.push(out);
      }
      const merged = evalPkg.mergeShards(outputs);
      if (f.output) await writeFileAtomic(resolve(f.output), evalPkg.resultsText(merged.results));
      const outputPath = f.output_path ?? f.writeOut;
      if (outputPath) {
        const files = await evalPkg.writeOutput(resolve(outputPath), merged, {
          logSamples: f.log_samples === true || f.writeOut !== undefined,
          dateId: evalPkg.pyIsoDateId(clock()()),
        });
        process.stdout.write(`results: ${files.results}\n`);
      }
      process.stdout.write(`${formatResults(merged.results)}\n`);
    });
}

async function remoteModelId(baseUrl: string, apiKey?: string): Promise<string> {
  const url = `${baseUrl.replace(/\/v1$/, "")}/v1/models`;
  try {
    const res = await fetch(url, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {} });
    const body = (await res.json()) as { data?: { id?: string }[] };
    const id = body.data?.[0]?.id;
    if (typeof id === "string") return id;
  } catch {
    // fall through
  }
  throw new HippoError("HTTP", "could not read the model id from /v1/models (give model_args model=)", {
    file: url,
  });
}

function formatResults(results: { results: Record<string, Record<string, unknown>> }): string {
  const rows = Object.entries(results.results).map(([task, m]) => {
    const f = (k: string) => (typeof m[k] === "number" ? (100 * (m[k] as number)).toFixed(1) : "—");
    return `| ${task} | ${f("acc,none")} ± ${f("acc_stderr,none")} | ${f("acc_norm,none")} |`;
  });
  return ["| task | acc % | acc_norm % |", "|---|---:|---:|", ...rows].join("\n");
}
