/**
 * `hippo train {cpt,sft,dpo}`: one training stage, run as a pipeline runs it. The flags become the stage's
 * settings (only the flags given: the stage's preset keeps every other value, `lora` key by key), validated
 * by the stage's own schema and checked by its own `check` before anything is written; the stage comes from
 * the same registry as a pipeline's.
 *
 * Flags take our spelling (`--learning-rate`, `--lora-r`) and the spelling of HF's `HfArgumentParser`, as
 * TRL's and transformers' example scripts take them (`--learning_rate`, `--num_train_epochs`,
 * `--per_device_train_batch_size`, `--gradient_accumulation_steps`, `--lora_r`, `--lora_alpha`,
 * `--lora_target_modules q_proj v_proj`, `--output_dir`, `--model_name_or_path`; checked against
 * transformers' hf_argparser.py and TRL's ModelConfig, transformers 4.29 / TRL 0.8 field names): a command
 * pasted from a TRL recipe works.
 */
import { resolve } from "node:path";
import { HippoError, type ModelArtifact, type PipelineStageOutput } from "@hippocrates/core";
import { type Command, Option } from "commander";
import type { ConfigIssue } from "../config/issues.js";
import { bindStage } from "../config/load.js";
import { folderProblem } from "../pipeline/checks.js";
import { createStageRegistry, registerBuiltin } from "../pipeline/registry.js";
import {
  type BackendChoice,
  hubProgress,
  modelArtifact,
  parseFloatArg,
  parseIntArg,
  resolveSource,
  resolveTokenizer,
  sourceRecord,
} from "./shared.js";

type Kind = "cpt" | "sft" | "dpo";
type Parse = "int" | "float" | "string" | "list" | "bool";

/**
 * One setting as the table below writes it. `field` is its name in transformers' TrainingArguments or TRL's
 * SFTConfig/DPOConfig/ModelConfig (default: the key); `ours` are our own spellings, put first.
 */
interface TrainSetting {
  /** The settings key, `lora.r` for a key of the `lora` block. */
  key: string;
  field?: string;
  ours?: string[];
  parse: Parse;
  help: string;
  choices?: string[];
  kinds?: Kind[];
}

/** A setting and all its flags: ours first (the first is shown in --help), then the HF spellings (accepted). */
type TrainFlag = TrainSetting & { flags: string[] };

/**
 * `ours`, then the spellings HfArgumentParser gives a dataclass field (transformers' `_parse_dataclass_field`:
 * `--field`, and `--field-with-dashes` when the name has underscores), the dashed one first, each spelling once.
 */
function spellingsOf({ key, field = key, ours = [] }: TrainSetting): string[] {
  return [...new Set([...ours, `--${field.replaceAll("_", "-")}`, `--${field}`])];
}

const TRAIN_SETTINGS: TrainSetting[] = [
  { key: "eval_data", parse: "string", help: "held-out records of the same format (eval loss)" },
  { key: "learning_rate", ours: ["--learning-rate", "--lr"], parse: "float", help: "peak learning rate" },
  { key: "num_train_epochs", ours: ["--epochs"], parse: "int", help: "epochs" },
  { key: "max_steps", parse: "int", help: "stop after this many optimizer steps" },
  { key: "per_device_train_batch_size", ours: ["--batch-size"], parse: "int", help: "micro-batch size" },
  {
    key: "gradient_accumulation_steps",
    ours: ["--grad-accum"],
    parse: "int",
    help: "micro-batches per optimizer step",
  },
  { key: "max_length", parse: "int", help: "sequence length (CPT: block size)" },
  {
    key: "lr_scheduler_type",
    ours: ["--scheduler"],
    parse: "string",
    help: "learning-rate schedule",
    choices: ["cosine", "linear", "constant", "constant_with_warmup"],
  },
  { key: "warmup_steps", parse: "int", help: "linear warmup steps" },
  { key: "warmup_ratio", parse: "float", help: "warmup as a fraction of the steps" },
  { key: "weight_decay", parse: "float", help: "AdamW weight decay" },
  { key: "max_grad_norm", parse: "float", help: "gradient clipping norm" },
  { key: "save_steps", ours: ["--save-every"], parse: "int", help: "checkpoint every N steps" },
  { key: "save_total_limit", parse: "int", help: "keep the newest N checkpoints" },
  { key: "logging_steps", parse: "int", help: "log metrics every N steps" },
  { key: "eval_steps", parse: "int", help: "evaluate every N steps" },
  {
    key: "overwrite_output_dir",
    ours: ["--restart"],
    parse: "bool",
    help: "drop the checkpoints in --output and start at step 0 (an interrupted run otherwise resumes; with every checkpoint corrupt it stops)",
  },
  {
    key: "gradient_checkpointing",
    parse: "bool",
    help: "recompute each layer in the backward pass: far less memory (fits the 4 GiB wasm heap), about the same speed",
  },
  { key: "lora.r", field: "lora_r", parse: "int", help: "LoRA rank" },
  { key: "lora.lora_alpha", field: "lora_alpha", parse: "float", help: "LoRA alpha" },
  { key: "lora.lora_dropout", field: "lora_dropout", parse: "float", help: "LoRA dropout" },
  {
    key: "lora.target_modules",
    field: "lora_target_modules",
    ours: ["--lora-targets"],
    parse: "list",
    help: 'LoRA target modules (q_proj,v_proj or q_proj v_proj), or "all-linear"',
  },
  {
    key: "lora.use_rslora",
    field: "use_rslora",
    parse: "bool",
    help: "rank-stabilised LoRA (alpha / sqrt r)",
  },
  {
    key: "template",
    parse: "string",
    help: 'prompt template: "default", "chatml", "tokenizer", "none" or a string with {prompt}',
    kinds: ["sft", "dpo"],
  },
  { key: "beta", parse: "float", help: "DPO beta", kinds: ["dpo"] },
  {
    key: "loss_type",
    parse: "string",
    help: "DPO loss",
    choices: ["sigmoid", "ipo", "hinge"],
    kinds: ["dpo"],
  },
  { key: "label_smoothing", parse: "float", help: "cDPO label smoothing", kinds: ["dpo"] },
];

export const TRAIN_FLAGS: TrainFlag[] = TRAIN_SETTINGS.map((s) => ({ ...s, flags: spellingsOf(s) }));

/** HfArgumentParser's booleans: a bare flag is true; a value is read as `string_to_bool` reads it. */
function parseBool(name: string) {
  return (value: string | undefined): boolean => {
    if (value === undefined) return true;
    const v = value.toLowerCase();
    if (["yes", "true", "t", "y", "1"].includes(v)) return true;
    if (["no", "false", "f", "n", "0"].includes(v)) return false;
    throw new HippoError("INVALID_ARGUMENT", `${name} takes true or false`, {
      key: name,
      got: JSON.stringify(value),
    });
  };
}

/** `--lora-targets q_proj,v_proj` and `--lora_target_modules q_proj v_proj` both give a list. */
const collectList = (value: string, previous: string[] | undefined) => [
  ...(previous ?? []),
  ...value.split(",").filter(Boolean),
];

function optionFor(flag: TrainFlag, spelling: string, primary: boolean): Option {
  const arg = flag.parse === "bool" ? " [bool]" : flag.parse === "list" ? " <modules...>" : " <value>";
  const also = flag.flags.filter((f) => f !== spelling);
  const opt = new Option(
    `${spelling}${arg}`,
    `${flag.help}${also.length ? ` (also ${also.join(", ")})` : ""}`,
  );
  if (flag.parse === "int") opt.argParser(parseIntArg(spelling));
  else if (flag.parse === "float") opt.argParser(parseFloatArg(spelling));
  else if (flag.parse === "bool") opt.argParser(parseBool(spelling));
  else if (flag.parse === "list") opt.argParser(collectList);
  if (flag.choices) opt.choices(flag.choices);
  if (!primary) opt.hideHelp();
  return opt;
}

/** The attribute name commander gives a flag (`--learning-rate` -> learningRate, `--lr_x` -> lr_x). */
const attributeOf = (spelling: string) => new Option(spelling).attributeName();

/**
 * The settings the given flags set (nothing for flags not given), and for each settings key the flag that
 * set it (for messages). Two spellings of one setting with different values are an error.
 */
export function settingsFromFlags(
  kind: Kind,
  opts: Record<string, unknown>,
): { settings: Record<string, unknown>; flagOf: Map<string, string> } {
  const settings: Record<string, unknown> = {};
  const flagOf = new Map<string, string>([["data", "--data"]]);
  for (const flag of TRAIN_FLAGS) {
    if (flag.kinds && !flag.kinds.includes(kind)) continue;
    const given = flag.flags
      .map((f) => ({ f, v: opts[attributeOf(f)] }))
      .filter((g): g is { f: string; v: unknown } => g.v !== undefined);
    const first = given[0];
    if (!first) continue;
    const other = given.find((g) => JSON.stringify(g.v) !== JSON.stringify(first.v));
    if (other)
      throw new HippoError(
        "INVALID_ARGUMENT",
        `${first.f} and ${other.f} set the same setting to different values`,
        {
          key: flag.key,
          got: `${JSON.stringify(first.v)} and ${JSON.stringify(other.v)}`,
        },
      );
    let value = first.v;
    // A list flag of one "all-linear" is PEFT's string value.
    if (flag.parse === "list" && Array.isArray(value) && value.length === 1 && value[0] === "all-linear")
      value = "all-linear";
    const [head, sub] = flag.key.split(".") as [string, string | undefined];
    if (sub === undefined) settings[head] = value;
    else {
      const block = (settings[head] ?? {}) as Record<string, unknown>;
      block[sub] = value;
      settings[head] = block;
    }
    flagOf.set(flag.key, first.f);
  }
  if (opts.full === true) {
    if (settings.lora !== undefined)
      throw new HippoError("INVALID_ARGUMENT", "--full trains every weight: it takes no LoRA flags", {
        key: "--full",
      });
    settings.lora = false;
    flagOf.set("lora", "--full");
  }
  return { settings, flagOf };
}

function flagIssues(issues: ConfigIssue[], flagOf: Map<string, string>): HippoError {
  const named = issues.map((i) => {
    const flag = flagOf.get(i.path) ?? flagOf.get(i.path.split(/[.[]/)[0] ?? "") ?? i.path;
    return `${flag}: ${i.message}`;
  });
  return new HippoError(
    "INVALID_ARGUMENT",
    named.length === 1 ? (named[0] as string) : `${named.length} problems:\n  ${named.join("\n  ")}`,
    { key: flagOf.get(issues[0]?.path ?? "") ?? issues[0]?.path },
  );
}

interface CommonFlags {
  model?: string;
  model_name_or_path?: string;
  revision?: string;
  model_revision?: string;
  adapter?: string;
  tokenizer?: string;
  data: string;
  output?: string;
  output_dir?: string;
  full?: boolean;
  seed: number;
  restart?: boolean;
  backend: BackendChoice;
  progress: boolean;
}

const DESCRIPTIONS: Record<Kind, string> = {
  cpt: "continued pre-training on documents ({text} records, TRL's language-modelling format), packed into blocks (preset: LoRA r8/alpha16 on the MLP, lr 1e-4)",
  sft: "instruction tuning on TRL's SFT formats ({messages}, {prompt, completion}, {text}) or Alpaca records, loss on responses only (preset: LoRA r32/alpha32 on all linear layers, 3 epochs)",
  dpo: "DPO on TRL's preference formats ({prompt, chosen, rejected}, or chosen/rejected conversations), reference = the input model (preset: beta 0.1, lr 1e-5, new LoRA on q/v)",
};

/**
 * Run one stage of `kind` on `model` with `settings` in `outputDir`, as a pipeline would. The model, adapter and
 * tokenizer are folders or Hub ids; a Hub model goes to the stage as its id at the resolved commit, which the
 * output (and an adapter's base) then names.
 */
async function trainOnce(
  kind: Kind,
  f: CommonFlags,
  settings: Record<string, unknown>,
  flagOf: Map<string, string>,
): Promise<PipelineStageOutput> {
  const modelDir = f.model ?? f.model_name_or_path;
  if (f.revision !== undefined && f.model_revision !== undefined && f.revision !== f.model_revision)
    throw new HippoError("INVALID_ARGUMENT", "--revision and --model_revision disagree", {
      key: "--revision",
      got: `${f.revision} and ${f.model_revision}`,
    });
  const outputDir = f.output ?? f.output_dir;
  if (!modelDir)
    throw new HippoError("INVALID_ARGUMENT", "give the input model: --model <dir>", { key: "--model" });
  if (!outputDir)
    throw new HippoError("INVALID_ARGUMENT", "give the output folder: --output <dir>", { key: "--output" });
  const out = resolve(outputDir);
  const outProblem = folderProblem(out);
  if (outProblem) throw new HippoError("INVALID_ARGUMENT", outProblem, { key: "--output" });

  const registry = createStageRegistry();
  await registerBuiltin(registry, kind);
  const stage = registry.get(kind);
  if (!stage) throw new HippoError("INTERNAL", `no ${kind} stage registered`);
  const bound = await bindStage(stage, { ...settings, data: f.data }, []);
  if (!bound.ok) throw flagIssues(bound.issues, flagOf);
  const progress = hubProgress(f.progress);
  const base = await resolveSource(modelDir, "model", {
    flag: "--model",
    revision: f.revision ?? f.model_revision,
    progress,
  });
  const adapter =
    f.adapter === undefined
      ? undefined
      : await resolveSource(f.adapter, "adapter", { flag: "--adapter", progress });
  const tok = await resolveTokenizer(f.tokenizer, { name: modelDir, resolved: base }, progress);
  const tokenizer = tok.path;
  try {
    await bound.bound.check({ baseDir: process.cwd(), tokenizer, log: () => {} });
  } catch (e) {
    if (!(e instanceof HippoError)) throw e;
    const key = e.location.key ?? "";
    const flag = flagOf.get(key) ?? (key ? `--${key.replace(/_/g, "-")}` : undefined);
    throw new HippoError(e.code, `${flag ? `${flag}: ` : ""}${e.message}`, { cause: e });
  }
  const model: ModelArtifact = adapter
    ? { kind: "peft-adapter", path: adapter.path, base: modelArtifact(base) }
    : modelArtifact(base);
  const { initBackend } = await import("@hippocrates/backend");
  await initBackend({ backend: f.backend });
  const controller = new AbortController();
  const onSig = () => controller.abort();
  process.once("SIGINT", onSig);
  const sources = [
    sourceRecord("model", base),
    adapter && sourceRecord("adapter", adapter),
    sourceRecord("tokenizer", tok),
  ].filter((x) => x !== undefined);
  try {
    const result = await bound.bound.run(model, {
      outputDir: out,
      runDir: out,
      baseDir: process.cwd(),
      tokenizer,
      seed: f.seed,
      progress,
      signal: controller.signal,
      log: (m) => process.stderr.write(`${m}\n`),
    });
    return { ...result, sources: [...sources, ...(result.sources ?? [])] };
  } finally {
    process.off("SIGINT", onSig);
  }
}

export function registerTrain(program: Command): void {
  const train = program
    .command("train")
    .description("train one stage: continued pre-training, instruction tuning or DPO");
  for (const kind of ["cpt", "sft", "dpo"] as const) {
    const cmd = train
      .command(kind)
      .description(DESCRIPTIONS[kind])
      .option("--model <dir|id>", "input HF model: a folder or a Hub id (also --model_name_or_path)")
      .addOption(new Option("--model_name_or_path <dir|id>").hideHelp())
      .option("--revision <rev>", "Hub revision of the model: branch, tag or commit (also --model_revision)")
      .addOption(new Option("--model_revision <rev>").hideHelp())
      .option("--adapter <dir|id>", "PEFT adapter of the input model (merged before training)")
      .option("--tokenizer <dir|id>", "tokenizer folder or Hub id (default: the model's)")
      .requiredOption("--data <file>", "training records (JSONL, JSON, CSV or Parquet; see the description)")
      .option(
        "--output <dir>",
        "output folder: adapter or model, trainer_state.json, metrics.jsonl, checkpoints (also --output_dir)",
      )
      .addOption(new Option("--output_dir <dir>").hideHelp())
      .option("--full", "train every weight instead of a LoRA adapter");
    for (const flag of TRAIN_FLAGS) {
      if (flag.kinds && !flag.kinds.includes(kind)) continue;
      flag.flags.forEach((spelling, i) => {
        cmd.addOption(optionFor(flag, spelling, i === 0));
      });
    }
    cmd
      .option("--seed <n>", "seed", parseIntArg("--seed"), 42)
      .addOption(
        new Option("--backend <name>", "compute backend")
          .choices(["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"])
          .default("auto"),
      )
      .option("--no-progress", "no progress bar")
      .addHelpText(
        "after",
        `\nOnly the flags given change the preset: --lora-r 16 keeps the preset's alpha and target modules.\nAn interrupted run resumes from its last checkpoint when run again with the same --output (a corrupt newest\ncheckpoint is skipped with a notice; when every one is corrupt the run stops: --restart starts over).\n\nExamples:\n  hippo train ${kind} --model models/base --data data/${kind}.jsonl --output out/${kind} --max-steps 100\n  hippo train ${kind} --model_name_or_path models/base --data data/${kind}.jsonl --output_dir out/${kind} \\\n    --learning_rate 2e-4 --per_device_train_batch_size 4 --gradient_accumulation_steps 4 --lora_r 16\n`,
      );
    cmd.action(async (f: CommonFlags, command: Command) => {
      const { settings, flagOf } = settingsFromFlags(kind, command.opts());
      const out = await trainOnce(kind, f, settings, flagOf);
      process.stdout.write(
        `${JSON.stringify({ model: out.model, metrics: out.metrics, files: out.files, sources: out.sources ?? [] }, null, 2)}\n`,
      );
    });
  }
}
