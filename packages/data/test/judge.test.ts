import { once } from "node:events";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { isHippoError, type ProgressReporter, silentProgress } from "@hippocrates/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPreferenceDataset, parseRanking, parseRetryAfter, requestKey } from "../src/index.js";
import { listAll, readJsonl, tempDir } from "./helpers.js";

/**
 * A loopback server speaking OpenAI's /v1/chat/completions. It ranks answers doctor > chatgpt > chatdoctor
 * (it finds them by markers in their text) and misbehaves on purpose, once per question: Q1 gets a 429 with
 * Retry-After: 1, Q2 a 500, Q3 a dropped connection; Q4's answer is unreadable prose.
 */
interface Log {
  attempts: Map<string, number>;
  /** Successful (200) answers per request key: a resume must never ask for the same key twice. */
  ok: Map<string, number>;
  times: Map<string, number[]>;
}

function startServer(log: Log): Promise<Server> {
  const server = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    if (req.method !== "POST" || req.url !== "/v1/chat/completions") {
      res.writeHead(404).end();
      return;
    }
    const request = JSON.parse(body);
    const user: string = request.messages[1].content;
    const q = /Patient question:\n(Q\d)/.exec(user)?.[1] ?? "?";
    const n = (log.attempts.get(q) ?? 0) + 1;
    log.attempts.set(q, n);
    log.times.set(q, [...(log.times.get(q) ?? []), Date.now()]);
    if (q === "Q1" && n === 1) {
      res
        .writeHead(429, { "retry-after": "1", "content-type": "application/json" })
        .end('{"error":{"message":"rate limited"}}');
      return;
    }
    if (q === "Q2" && n === 1) {
      res.writeHead(500).end("internal error");
      return;
    }
    if (q === "Q3" && n === 1) {
      req.socket.destroy();
      return;
    }
    let content: string;
    if (q === "Q4") content = "All three answers have merit; I cannot decide.";
    else {
      const labelOf = (marker: string) => new RegExp(`Answer ([A-C]):\\n${marker}`).exec(user)?.[1];
      const ranking = [labelOf("DOC"), labelOf("GPT"), labelOf("CD")].filter(Boolean);
      content = `Answer analysis...\n{"ranking": ${JSON.stringify(ranking)}}`;
    }
    const key = requestKey(request);
    log.ok.set(key, (log.ok.get(key) ?? 0) + 1);
    res.writeHead(200, { "content-type": "application/json" }).end(
      JSON.stringify({
        id: "x",
        object: "chat.completion",
        choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
        usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 },
      }),
    );
  });
  server.listen(0, "127.0.0.1");
  return once(server, "listening").then(() => server);
}

describe("preference data through a judge on a loopback OpenAI-protocol server", () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let server: Server;
  const log: Log = { attempts: new Map(), ok: new Map(), times: new Map() };
  let baseUrl = "";
  let input = "";

  beforeAll(async () => {
    t = await tempDir();
    server = await startServer(log);
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    input = join(t.dir, "icliniq.jsonl");
    const rows = [1, 2, 3, 4, 5].map((i) => ({
      id: `q${i}`,
      input: `Q${i} I have had a headache for ${i} days. What should I do?`,
      answer_icliniq: `DOC answer ${i}: see a doctor if it gets worse.`,
      answer_chatgpt: `GPT answer ${i}: rest and drink water.`,
      answer_chatdoctor: i === 5 ? "" : `CD answer ${i}: take some pills.`,
    }));
    await writeFile(input, `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`);
  });
  afterAll(async () => {
    server.close();
    await t.cleanup();
  });

  it("survives 429/500/dropped connections, resumes after an abort without asking twice, keeps unreadable answers aside", async () => {
    const outDir = join(t.dir, "pref");
    const cachePath = join(t.dir, "judge-cache.jsonl");
    const judge = {
      baseUrl,
      apiKey: "test",
      concurrency: 1,
      baseDelayMs: 10,
      maxDelayMs: 50,
      timeoutMs: 5000,
      pricePer1kPrompt: 0.03,
      pricePer1kCompletion: 0.06,
    };

    // Run 1: abort after two answers arrive (as Ctrl-C would).
    const controller = new AbortController();
    let ticks = 0;
    const abortingProgress: ProgressReporter = {
      start: () => ({
        tick() {
          if (++ticks === 2) controller.abort();
        },
        done() {},
      }),
    };
    const err = await buildPreferenceDataset(
      { input, outDir, model: "judge-model", judge, cachePath, signal: controller.signal },
      abortingProgress,
    ).catch((e) => e);
    expect(isHippoError(err, "ABORTED")).toBe(true);
    expect(existsSync(outDir)).toBe(false);
    expect(await listAll(t.dir)).toEqual(["icliniq.jsonl", "judge-cache.jsonl"]);
    expect((await readJsonl(cachePath)).length).toBe(2);

    // Run 2: resumes from the cache.
    const lines: string[] = [];
    const summary = await buildPreferenceDataset(
      { input, outDir, model: "judge-model", judge, cachePath, log: (l) => lines.push(l) },
      silentProgress,
    );
    console.log(lines.join("\n"));
    console.log("server attempts per question:", Object.fromEntries(log.attempts));

    // Every request key was answered (HTTP 200) exactly once across both runs.
    expect(log.ok.size).toBe(5);
    expect([...log.ok.values()].every((c) => c === 1)).toBe(true);
    expect(summary.judge.cached).toBe(2);
    expect(summary.judge.answered).toBe(3);
    // Q1..Q3 needed one retry each; Q4 and Q5 none.
    expect(Object.fromEntries(log.attempts)).toEqual({ Q1: 2, Q2: 2, Q3: 2, Q4: 1, Q5: 1 });
    // Retry-After: 1 was honoured.
    const q1 = log.times.get("Q1") as number[];
    expect((q1[1] as number) - (q1[0] as number)).toBeGreaterThanOrEqual(950);
    // Tokens and cost of this run (3 answers x (100 + 20) tokens).
    expect(summary.judge.promptTokens).toBe(300);
    expect(summary.judge.completionTokens).toBe(60);
    expect(summary.judge.estimatedCost).toBeCloseTo(0.3 * 0.03 + 0.06 * 0.06, 10);
    expect(lines[0]).toMatch(/estimated cost 0\.0126/);

    // Q4 unreadable -> rejects; Q1-Q3 give 2 pairs (best vs rest), Q5 has two answers -> 1 pair.
    expect(summary.unparseable).toBe(1);
    expect(summary.pairs).toBe(7);
    const pairs = await readJsonl<{ id: string; prompt: string; chosen: string; rejected: string }>(
      join(outDir, "pairs.jsonl"),
    );
    expect(pairs).toHaveLength(7);
    for (const p of pairs) {
      expect(Object.keys(p).sort()).toEqual(["chosen", "id", "prompt", "rejected", "source"]);
      expect(p.prompt).toMatch(/^Q\d I have had a headache/);
    }
    expect(pairs.filter((p) => p.chosen.startsWith("DOC")).length).toBe(7);
    expect(pairs.find((p) => p.id === "q1:doctor>chatdoctor")?.rejected).toBe(
      "CD answer 1: take some pills.",
    );
    const rejects = await readJsonl<{ id: string; content: string }>(join(outDir, "rejects.jsonl"));
    expect(rejects.map((r) => r.id)).toEqual(["q4"]);
    const manifest = JSON.parse(await readFile(join(outDir, "manifest.json"), "utf8"));
    expect(manifest.counts).toMatchObject({ questions: 5, pairs: 7, unparseable: 1 });

    // Run 3: everything cached, no request at all.
    const before = [...log.attempts.values()].reduce((a, b) => a + b, 0);
    const again = await buildPreferenceDataset(
      { input, outDir, model: "judge-model", judge, cachePath },
      silentProgress,
    );
    expect([...log.attempts.values()].reduce((a, b) => a + b, 0)).toBe(before);
    expect(again.judge.httpRequests).toBe(0);
    expect(await readFile(join(outDir, "pairs.jsonl"), "utf8")).toBe(
      pairs.map((p) => `${JSON.stringify(p)}\n`).join(""),
    );
  });

  it("fails fast on a client error and reports the endpoint", async () => {
    const err = await buildPreferenceDataset(
      {
        input,
        outDir: join(t.dir, "x"),
        model: "m",
        judge: { baseUrl: `${baseUrl}/nope`, maxRetries: 3, baseDelayMs: 1 },
        cachePath: join(t.dir, "c2.jsonl"),
      },
      silentProgress,
    ).catch((e) => e);
    expect(isHippoError(err, "HTTP")).toBe(true);
    expect(err.message).toMatch(/HTTP 404/);
    expect(existsSync(join(t.dir, "x"))).toBe(false);
  });

  it("parses rankings strictly and reads Retry-After in both forms", () => {
    expect(parseRanking('bla {"ranking": ["B", "A", "C"]}', ["A", "B", "C"])).toEqual(["B", "A", "C"]);
    expect(parseRanking('{"ranking": ["B", "B", "C"]}', ["A", "B", "C"])).toBeUndefined();
    expect(parseRanking('{"ranking": ["B", "A"]}', ["A", "B", "C"])).toBeUndefined();
    expect(parseRanking("B is best, then A", ["A", "B", "C"])).toBeUndefined();
    expect(parseRetryAfter("2")).toBe(2000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter("soon")).toBeUndefined();
  });
});
