/**
 * The server tests' set-up: the miniature's tokenizer, the deterministic toy model behind a server on a
 * loopback port, and the official openai client of a port.
 */
import { join } from "node:path";
import { type HfTokenizer, loadTokenizer } from "@hippocrates/tokenizer";
import OpenAI from "openai";
import { allText, buildDatasets, generateKnowledgeBase } from "../../src/miniature/kb.js";
import { writeTokenizerFolder } from "../../src/miniature/tokenizer.js";
import { createServer } from "../../src/serve/server.js";
import { createToyModel } from "./toy-model.js";

/** A tokenizer trained on the miniature's texts (seed 7, 12 diseases) and `extra`, written to `dir/tok`. */
export async function miniatureTokenizer(dir: string, extra: string[]): Promise<HfTokenizer> {
  const kb = generateKnowledgeBase({ seed: 7, diseases: 12 });
  await writeTokenizerFolder(join(dir, "tok"), [...allText(buildDatasets(kb)), ...extra]);
  return loadTokenizer(join(dir, "tok"));
}

/** The openai client of a server on this loopback port; no retries, so that every error reaches the test. */
export function openaiClient(port: number, apiKey = "unused"): OpenAI {
  return new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey, maxRetries: 0 });
}

/** The toy model (context 128) behind a server with the default options and max_tokens capped at 64. */
export async function serveToy(tok: HfTokenizer) {
  const toy = createToyModel(tok, { maxLength: 128 });
  const server = createServer(toy.model, { maxTokens: 64 });
  const { port } = await server.listen(0);
  return { toy, server, port, client: openaiClient(port) };
}
