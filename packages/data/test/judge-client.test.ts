import { once } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatRequest, createJudgeClient, openAnswerCache, requestKey } from "../src/index.js";
import { tempDir } from "./helpers.js";

const req = (i: number): ChatRequest => ({
  model: "m",
  temperature: 0,
  messages: [{ role: "user", content: `item ${i}` }],
});

describe("judge client", () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let inFlight = 0;
  let maxInFlight = 0;
  const attempts = new Map<string, number>();
  const hung: ServerResponse[] = [];
  const server = createServer(async (request, res) => {
    let body = "";
    for await (const c of request) body += c;
    const content: string = JSON.parse(body).messages[0].content;
    const n = (attempts.get(content) ?? 0) + 1;
    attempts.set(content, n);
    if (content === "item 2" && n === 1) {
      hung.push(res); // never answers: the client's timeout must fire
      return;
    }
    if (content === "item refused") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({ choices: [{ message: { role: "assistant", content: null, refusal: "no" } }] }),
      );
      return;
    }
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((r) => setTimeout(r, 40));
    inFlight--;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        choices: [{ message: { role: "assistant", content: `answer to ${content}` } }],
        usage: { prompt_tokens: 10, completion_tokens: 2 },
      }),
    );
  });
  let baseUrl = "";
  beforeAll(async () => {
    t = await tempDir();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  afterAll(async () => {
    for (const r of hung) r.destroy();
    server.close();
    await t.cleanup();
  });

  it("keeps at most `concurrency` requests in flight, times out a hung request and retries it, returns answers in order", async () => {
    const cache = await openAnswerCache(join(t.dir, "c.jsonl"));
    // The timeout is generous on purpose: on a loaded 2-core CI machine a 40 ms answer can take seconds, and
    // only the hung request may time out for the counts below to hold.
    const client = createJudgeClient(cache, { baseUrl, concurrency: 2, timeoutMs: 8000, baseDelayMs: 5 });
    const requests = Array.from({ length: 8 }, (_, i) => req(i));
    const answers = await client.complete(requests);
    expect(answers.map((a) => a.content)).toEqual(requests.map((_, i) => `answer to item ${i}`));
    expect(maxInFlight).toBe(2);
    expect(attempts.get("item 2")).toBe(2);
    expect(client.stats()).toMatchObject({
      answered: 8,
      httpRequests: 9,
      retries: 1,
      promptTokens: 80,
      completionTokens: 16,
    });
  });

  it("keeps a null (refused) answer as an empty one instead of failing the run", async () => {
    const cache = await openAnswerCache(join(t.dir, "r.jsonl"));
    const client = createJudgeClient(cache, { baseUrl });
    const [a] = await client.complete([
      { model: "m", messages: [{ role: "user", content: "item refused" }] },
    ]);
    expect(a).toEqual({ content: "", promptTokens: 0, completionTokens: 0 });
    expect(client.stats().answered).toBe(1);
  });

  it("reads a cache whose last line was torn by a crash, cuts that line off and appends after the good ones", async () => {
    const path = join(t.dir, "torn.jsonl");
    const good = {
      key: requestKey(req(100)),
      answer: { content: "cached", promptTokens: 1, completionTokens: 1 },
    };
    await writeFile(path, `${JSON.stringify(good)}\n{"key":"abc","answer":{"cont`);
    const cache = await openAnswerCache(path);
    expect(cache.size).toBe(1);
    const client = createJudgeClient(cache, { baseUrl, concurrency: 1 });
    const before = attempts.get("item 100");
    const [a, b] = await client.complete([req(100), req(101)]);
    expect(before).toBeUndefined();
    expect(attempts.get("item 100")).toBeUndefined();
    expect(a?.content).toBe("cached");
    expect(b?.content).toBe("answer to item 101");
    const lines = (await readFile(path, "utf8")).split("\n");
    expect(lines).toHaveLength(3);
    expect(JSON.parse(lines[1] as string).key).toBe(requestKey(req(101)));
    expect(lines[2]).toBe("");
    expect((await openAnswerCache(path)).size).toBe(2);
    // A bad line that is not the last is damage, not a crash: refuse to guess.
    await writeFile(path, `{"key":"abc","answer":{"cont\n${JSON.stringify(good)}\n`);
    await expect(openAnswerCache(path)).rejects.toThrow(/torn\.jsonl:1: damaged judge cache line/);
  });
});
