import { existsSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { HippoError } from "@hippocrates/core";
import { type Command, Option } from "commander";
import { localPromptScorer } from "../serve/local.js";
import { createServer } from "../serve/server.js";
import type { ServeModel } from "../serve/types.js";
import { type BackendChoice, ensureBackend, loadRunTokenizer, parseIntArg } from "./shared.js";

export interface LoadServeOptions {
  tokenizer?: string;
  adapter?: string;
  name?: string;
  backend?: BackendChoice;
  maxLength?: number;
}

/** Load an HF folder (optionally with a PEFT adapter merged) as the server's model. */
export async function loadServeModel(
  dir: string,
  o: LoadServeOptions = {},
): Promise<{ model: ServeModel; dispose: () => void }> {
  await ensureBackend({ backend: o.backend ?? "auto", threads: undefined, tokenizer: "" });
  const mod = (await import("@hippocrates/model")) as typeof import("@hippocrates/model") &
    Record<string, unknown>;
  const artifact = o.adapter
    ? ({
        kind: "peft-adapter",
        path: resolve(o.adapter),
        base: { kind: "hf-model", path: resolve(dir) },
      } as const)
    : ({ kind: "hf-model", path: resolve(dir) } as const);
  const lm = await mod.loadArtifact(artifact);
  const tokDir = resolve(o.tokenizer ?? (existsSync(join(dir, "tokenizer.json")) ? dir : (o.adapter ?? dir)));
  const tokenizer = await loadRunTokenizer(tokDir);
  const maxLength = Math.min(o.maxLength ?? Number.POSITIVE_INFINITY, lm.config.max_position_embeddings);
  const asGenerative = mod.asGenerativeModel as
    | ((
        m: typeof lm,
        x: { name: string; maxLength?: number; decode?: (ids: number[]) => Promise<string> },
      ) => ServeModel["generator"])
    | undefined;
  if (typeof asGenerative !== "function") {
    lm.dispose();
    throw new HippoError(
      "UNSUPPORTED",
      "@hippocrates/model in this version has no asGenerativeModel (generation)",
    );
  }
  const id = o.name ?? basename(resolve(dir));
  return {
    model: {
      id,
      tokenizer,
      generator: asGenerative(lm, { name: id, maxLength, decode: (ids) => tokenizer.decode(ids) }),
      scorer: localPromptScorer(lm, maxLength),
      maxLength,
    },
    dispose: () => lm.dispose(),
  };
}

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description(
      "serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions)",
    )
    .argument(
      "<model-dir>",
      "HF model folder (config.json + safetensors; tokenizer files here or --tokenizer)",
    )
    .option("--tokenizer <dir>", "tokenizer folder (default: the model folder)")
    .option("--adapter <dir>", "PEFT adapter folder merged into the model at load")
    .option("--name <id>", "model id clients send (default: the folder name)")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "port", parseIntArg("--port"), 8000)
    .option("--max-tokens <n>", "largest max_tokens a request may ask for", parseIntArg("--max-tokens"), 512)
    .option("--max-body <bytes>", "largest request body", parseIntArg("--max-body"), 1 << 20)
    .option("--max-batch <n>", "most requests per model call", parseIntArg("--max-batch"), 8)
    .addOption(
      new Option("--backend <name>", "compute backend")
        .choices(["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"])
        .default("auto"),
    )
    .option("--quiet", "no request log")
    .addHelpText(
      "after",
      '\nSIGTERM or Ctrl-C stops accepting connections and finishes the requests in flight.\n\nExample:\n  hippo serve runs/miniature/run/07-merge/model --port 8000\n  curl localhost:8000/v1/completions -H \'content-type: application/json\' -d \'{"prompt":"Question:","max_tokens":8}\'\n',
    )
    .action(
      async (
        dir: string,
        opts: {
          tokenizer?: string;
          adapter?: string;
          name?: string;
          host: string;
          port: number;
          maxTokens: number;
          maxBody: number;
          maxBatch: number;
          backend: BackendChoice;
          quiet?: boolean;
        },
      ) => {
        const { model, dispose } = await loadServeModel(dir, opts);
        const server = createServer(model, {
          maxTokens: opts.maxTokens,
          maxBodyBytes: opts.maxBody,
          maxBatch: opts.maxBatch,
          ...(opts.quiet ? {} : { log: (l: string) => process.stderr.write(`${l}\n`) }),
        });
        const addr = await server.listen(opts.port, opts.host);
        process.stderr.write(
          `serving ${model.id} (max length ${model.maxLength}) on http://${addr.address}:${addr.port}/v1\n`,
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
      },
    );
}
