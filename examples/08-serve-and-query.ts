/**
 * 08 - Serve a model over an OpenAI-compatible API and query it
 *
 * The server of @hippocrates/cli (what `hippo serve <folder>` runs) puts a model folder behind /v1/models,
 * /v1/completions (with `echo` + `logprobs`, which is how lm-evaluation-harness and the eval package score
 * through an endpoint) and /v1/chat/completions (the tokenizer's chat template), with streaming over
 * server-sent events. We start it on a loopback port with an API key, talk to it with the official `openai`
 * npm client, and shut it down gracefully (requests in flight finish first). The model is a small random
 * Llama, so its words are gibberish: the protocol is the point.
 *
 *   pnpm exec tsx examples/08-serve-and-query.ts
 */
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initBackend } from "@hippocrates/backend";
import { createServer, loadServeModel } from "@hippocrates/cli";
import { createRandomModel, saveModel } from "@hippocrates/model";
import OpenAI from "openai";

const LLAMA2 = fileURLToPath(new URL("../../shared/data/tokenizers/llama2/", import.meta.url));
const work = join(tmpdir(), "hippocrates-example-08");
await rm(work, { recursive: true, force: true });
const modelDir = join(work, "tiny-chat");
await mkdir(modelDir, { recursive: true });

// 1. A servable folder: weights + config (a random Llama with the Llama-2 vocabulary) and the tokenizer
//    files. The base Llama-2 tokenizer has no chat template, so we add Llama-2-chat's to its config, as a
//    chat model's folder would have it.
await initBackend();
const model = createRandomModel(
  {
    model_type: "llama",
    vocab_size: 32000,
    hidden_size: 64,
    intermediate_size: 172,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    hidden_act: "silu",
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
  },
  { seed: 0 },
);
await saveModel(model, modelDir);
model.dispose();
for (const f of ["tokenizer.json", "special_tokens_map.json"])
  await copyFile(join(LLAMA2, f), join(modelDir, f));
const tokConfig = JSON.parse(await readFile(join(LLAMA2, "tokenizer_config.json"), "utf8")) as Record<
  string,
  unknown
>;
tokConfig.chat_template =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
await writeFile(join(modelDir, "tokenizer_config.json"), JSON.stringify(tokConfig, null, 2));

// 2. Load the folder for serving (weights, tokenizer, chat template) and start the server on 127.0.0.1, port 0
//    (the OS picks a free one). `maxTokens` caps what a request may ask for; more is a 400 error. With an
//    `apiKey` every request must carry it as `Authorization: Bearer <key>` (`hippo serve` reads it from
//    HIPPO_API_KEY, and refuses to listen on anything but loopback without one).
const { model: served, dispose } = await loadServeModel(modelDir);
const apiKey = randomBytes(24).toString("hex");
const server = createServer(served, { maxTokens: 64, apiKey });
const address = await server.listen(0, "127.0.0.1");
const baseURL = `http://127.0.0.1:${address.port}/v1`;
console.log(`server ready at ${baseURL}`);

try {
  // 3. The official client, pointed at our server with the key.
  const client = new OpenAI({ baseURL, apiKey });

  const models = await client.models.list();
  console.log(`models: ${models.data.map((m) => m.id).join(", ")}`);
  const id = models.data[0]?.id ?? "tiny-chat";

  // 4. A completion: greedy (temperature 0), 8 tokens.
  const completion = await client.completions.create({
    model: id,
    prompt: "The patient presents with",
    max_tokens: 8,
    temperature: 0,
  });
  console.log(
    `completion: ${JSON.stringify(completion.choices[0]?.text)} (finish_reason ${completion.choices[0]?.finish_reason}, ${completion.usage?.completion_tokens} tokens)`,
  );

  // 5. Scoring through the API: echo the prompt back with the log-probability of each of its tokens and no new
  //    tokens. The sum over an answer's tokens is its log-likelihood, what a benchmark compares.
  const scored = await client.completions.create({
    model: id,
    prompt: "Question: Which vitamin deficiency causes scurvy?\nAnswer: Vitamin C",
    max_tokens: 0,
    echo: true,
    logprobs: 1,
  });
  const lp = scored.choices[0]?.logprobs;
  const tail = (lp?.tokens ?? [])
    .slice(-3)
    .map((t, i) => `${JSON.stringify(t)}=${lp?.token_logprobs?.slice(-3)[i]?.toFixed(2)}`);
  console.log(`echo+logprobs: ${lp?.tokens?.length} prompt tokens scored; last three: ${tail.join(" ")}`);

  // 6. Chat: the server renders the messages with the tokenizer's chat template.
  const chat = await client.chat.completions.create({
    model: id,
    messages: [
      { role: "system", content: "You are a careful medical assistant." },
      { role: "user", content: "What is the antidote for acetaminophen overdose?" },
    ],
    max_tokens: 8,
    temperature: 0,
  });
  console.log(
    `chat: ${JSON.stringify(chat.choices[0]?.message.content)} (prompt ${chat.usage?.prompt_tokens} tokens)`,
  );

  // 7. Streaming: the same request with stream: true arrives as server-sent events, one delta per token.
  const stream = await client.chat.completions.create({
    model: id,
    messages: [{ role: "user", content: "Name a symptom of hypothyroidism." }],
    max_tokens: 8,
    temperature: 0.7,
    seed: 3,
    stream: true,
  });
  let chunks = 0;
  let streamed = "";
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta?.content ?? "";
    if (delta) chunks++;
    streamed += delta;
  }
  console.log(`streamed ${chunks} chunks: ${JSON.stringify(streamed)}`);

  // 8. Errors come back in OpenAI's error shape, which the client raises as APIError.
  try {
    await client.completions.create({ model: id, prompt: "x", max_tokens: 100000 });
  } catch (e) {
    if (e instanceof OpenAI.APIError) console.log(`too many tokens -> HTTP ${e.status}: ${e.message}`);
    else throw e;
  }
  try {
    await new OpenAI({ baseURL, apiKey: "a-wrong-key" }).models.list();
  } catch (e) {
    if (e instanceof OpenAI.AuthenticationError) console.log(`wrong key -> HTTP ${e.status}: ${e.message}`);
    else throw e;
  }
} finally {
  // 9. Graceful shutdown (what SIGTERM does to `hippo serve`): stop accepting, finish requests in flight, close.
  await server.close();
  dispose();
  console.log("server stopped");
  await rm(work, { recursive: true, force: true });
}
