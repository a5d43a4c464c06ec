import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import { HippoError, type ModelArtifact, type ProgressReporter } from "@hippocrates/core";
import { type Command, Option } from "commander";
import { localPromptScorer } from "../serve/local.js";
import {
  checkBinding,
  checkServeOptions,
  createServer,
  type ServeLimits,
  type ServeOptions,
} from "../serve/server.js";
import type { ServeModel } from "../serve/types.js";
import {
  type BackendChoice,
  hubProgress,
  modelArtifact,
  parseIntArg,
  type Resolved,
  resolveSource,
  resolveTokenizer,
} from "./shared.js";

export interface LoadServeOptions {
  tokenizer?: string;
  adapter?: string;
  /** Hub revision of the model (branch, tag, commit), as `org/name@rev`. */
  revision?: string;
  name?: string;
  backend?: BackendChoice;
  maxLength?: number;
  /** Download progress of Hub files (default: a bar on stderr). */
  progress?: ProgressReporter;
}

/**
 * Load an HF model (a folder or a Hub id; optionally with a PEFT adapter merged) as the server's model. A
 * tokenizer with more tokens than the model's `vocab_size` is refused here: its ids past the embedding table
 * would fail every request that contains them.
 */
export async function loadServeModel(
  nameOrPath: string,
  o: LoadServeOptions = {},
): Promise<{
  model: ServeModel;
  dispose: () => void;
  sources: { model: Resolved; tokenizer: Resolved; adapter?: Resolved };
}> {
  const progress = o.progress ?? hubProgress(true);
  const base = await resolveSource(nameOrPath, "model", { flag: "model", revision: o.revision, progress });
  const adapter =
    o.adapter === undefined
      ? undefined
      : await resolveSource(o.adapter, "adapter", { flag: "--adapter", progress });
  // The tokenizer: --tokenizer, else the model's own, else (a local model folder without one) the adapter's.
  const tok =
    o.tokenizer === undefined && !base.hub && !existsSync(join(base.path, "tokenizer.json")) && adapter
      ? adapter
      : await resolveTokenizer(o.tokenizer, { name: nameOrPath, resolved: base }, progress);
  const { initBackend } = await import("@hippocrates/backend");
  await initBackend({ backend: o.backend ?? "auto" });
  const { asGenerativeModel, loadArtifact } = await import("@hippocrates/model");
  const { loadTokenizer } = await import("@hippocrates/tokenizer");
  const artifact: ModelArtifact = adapter
    ? { kind: "peft-adapter", path: adapter.path, base: modelArtifact(base) }
    : modelArtifact(base);
  const tokDir = tok.path;
  const tokenizer = await loadTokenizer(tokDir);
  const lm = await loadArtifact(artifact);
  if (tokenizer.vocabSize > lm.config.vocab_size) {
    lm.dispose();
    throw new HippoError(
      "INVALID_CONFIG",
      `the tokenizer in ${tokDir} has ${tokenizer.vocabSize} tokens, more than the model's vocab_size: ids past ${lm.config.vocab_size - 1} have no embedding (is --tokenizer the model's own?)`,
      {
        file: join(base.path, "config.json"),
        key: "vocab_size",
        expected: `>= ${tokenizer.vocabSize}`,
        got: String(lm.config.vocab_size),
      },
    );
  }
  const maxLength = Math.min(o.maxLength ?? Number.POSITIVE_INFINITY, lm.config.max_position_embeddings);
  // What clients send as `model`: a Hub model's id (as vLLM serves it), else the folder's name.
  const id = o.name ?? base.hub?.repo ?? basename(base.path);
  return {
    model: {
      id,
      tokenizer,
      generator: asGenerativeModel(lm, { name: id, maxLength, decode: (ids) => tokenizer.decode(ids) }),
      scorer: localPromptScorer(lm, maxLength),
      maxLength,
    },
    dispose: () => lm.dispose(),
    sources: { model: base, tokenizer: tok, ...(adapter ? { adapter } : {}) },
  };
}

/** The flag each option comes from, so a refusal names what the user typed. */
const FLAGS: Partial<Record<keyof ServeOptions, string>> = {
  apiKey: "--api-key",
  maxBodyBytes: "--max-body",
  maxTokens: "--max-tokens",
  maxBatch: "--max-batch",
  maxChoices: "--max-choices",
  maxQueue: "--max-queue",
};

interface ServeFlags {
  tokenizer?: string;
  adapter?: string;
  revision?: string;
  name?: string;
  host: string;
  port: number;
  apiKey?: string;
  maxTokens: number;
  maxBody: number;
  maxBatch: number;
  maxChoices: number;
  maxQueue: number;
  backend: BackendChoice;
  quiet?: boolean;
}

/** Every flag checked before the model loads (minutes for a large one): a mistake costs nothing. */
function checkFlags(opts: ServeFlags): ServeLimits {
  if (!Number.isInteger(opts.port) || opts.port > 65535)
    throw new HippoError("INVALID_ARGUMENT", "must be a port number in [0, 65535] (0: any free port)", {
      key: "--port",
      got: String(opts.port),
    });
  if (opts.host.trim() === "")
    throw new HippoError("INVALID_ARGUMENT", "must name an address to listen on", { key: "--host" });
  const limits = checkServeOptions(
    {
      maxTokens: opts.maxTokens,
      maxBodyBytes: opts.maxBody,
      maxBatch: opts.maxBatch,
      maxChoices: opts.maxChoices,
      maxQueue: opts.maxQueue,
      apiKey: opts.apiKey,
    },
    (k) => FLAGS[k] ?? k,
  );
  checkBinding(opts.host, opts.apiKey, "--host");
  return limits;
}

export function registerServe(program: Command): void {
  const d = checkServeOptions({});
  program
    .command("serve")
    .description(
      "serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions)",
    )
    .argument(
      "<model>",
      "HF model folder (config.json + safetensors; tokenizer files here or --tokenizer) or Hub id (org/name[@rev])",
    )
    .option("--revision <rev>", "Hub revision of the model: branch, tag or commit (default main)")
    .option("--tokenizer <dir|id>", "tokenizer folder or Hub id (default: the model's)")
    .option("--adapter <dir|id>", "PEFT adapter (folder or Hub id) merged into the model at load")
    .option("--name <id>", "model id clients send (default: the Hub id, or the folder name)")
    .option("--host <host>", "address to listen on (anything but loopback needs an API key)", "127.0.0.1")
    .option("--port <n>", "port", parseIntArg("--port"), 8000)
    .addOption(
      new Option(
        "--api-key <key>",
        "key clients must send as 'Authorization: Bearer <key>' (prefer the environment variable: a flag shows in ps)",
      ).env("HIPPO_API_KEY"),
    )
    .option(
      "--max-tokens <n>",
      "largest max_tokens a request may ask for",
      parseIntArg("--max-tokens"),
      d.maxTokens,
    )
    .option("--max-body <bytes>", "largest request body", parseIntArg("--max-body"), d.maxBodyBytes)
    .option("--max-batch <n>", "most sequences per model call", parseIntArg("--max-batch"), d.maxBatch)
    .option(
      "--max-choices <n>",
      "most choices (prompts x n) one request may ask for",
      parseIntArg("--max-choices"),
      d.maxChoices,
    )
    .option(
      "--max-queue <n>",
      "most choices queued or running at once (past it: 429 + Retry-After)",
      parseIntArg("--max-queue"),
      d.maxQueue,
    )
    .addOption(
      new Option("--backend <name>", "compute backend")
        .choices(["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"])
        .default("auto"),
    )
    .option("--quiet", "no request log")
    .addHelpText(
      "after",
      '\nSIGTERM or Ctrl-C stops accepting connections and finishes the requests in flight.\n\nExamples:\n  hippo serve meta-llama/Llama-2-7b-hf --port 8000\n  hippo serve runs/miniature/run/07-merge/model --port 8000\n  curl localhost:8000/v1/completions -H \'content-type: application/json\' -d \'{"prompt":"Question:","max_tokens":8}\'\n  HIPPO_API_KEY=$(openssl rand -hex 24) hippo serve models/hippo --host 0.0.0.0\n',
    )
    .action(async (nameOrPath: string, opts: ServeFlags) => {
      const limits = checkFlags(opts);
      const { model, dispose, sources } = await loadServeModel(nameOrPath, opts);
      const server = createServer(model, {
        ...limits,
        apiKey: opts.apiKey,
        log: opts.quiet ? undefined : (l: string) => process.stderr.write(`${l}\n`),
      });
      const addr = await server.listen(opts.port, opts.host);
      const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
      const hub = sources.model.hub;
      process.stderr.write(
        `serving ${model.id}${hub ? ` (${hub.repo}@${hub.commit})` : ""} (max length ${model.maxLength}) on http://${host}:${addr.port}/v1 (${opts.apiKey !== undefined ? "API key required" : "no API key: loopback only"})\n`,
      );
      await new Promise<void>((done) => {
        const stop = () => {
          process.stderr.write("shutting down: finishing requests in flight\n");
          void server.close().then(done);
        };
        process.once("SIGTERM", stop);
        process.once("SIGINT", stop);
      });
      dispose();
    });
}
