import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOpenAICompletionsModel, type OpenAICompletionsOptions } from "../src/openai.js";
import { createDetModel, H0, preferred, step, tokenLogprob } from "./detModel.js";
import { evaluateShared } from "./helpers.js";

/**
 * A loopback server speaking the completions protocol as vLLM does for echo + logprobs + max_tokens 0:
 * token strings, token_logprobs (null for the first prompt token), top_logprobs with the top-1 token.
 * Its scores come from the same deterministic distribution as `createDetModel`.
 */
let server: Server;
let baseUrl: string;
let failNext = 0;
let calls = 0;
const tokStr = (id: number) => `<${id}>`;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      calls++;
      if (req.url !== "/v1/completions" || req.method !== "POST") {
        res.writeHead(404).end("not found");
        return;
      }
      if (failNext > 0) {
        failNext--;
        res.writeHead(503).end("busy");
        return;
      }
      const q = JSON.parse(body) as {
        prompt: number[][];
        echo: boolean;
        max_tokens: number;
        logprobs: number;
      };
      if (
        !q.echo ||
        q.max_tokens !== 0 ||
        q.logprobs !== 1 ||
        !Array.isArray(q.prompt) ||
        !q.prompt.every(Array.isArray)
      ) {
        res.writeHead(400).end("bad request");
        return;
      }
      const choices = q.prompt.map((ids, index) => {
        let h = H0;
        const token_logprobs: (number | null)[] = [];
        const top_logprobs: (Record<string, number> | null)[] = [];
        ids.forEach((id, i) => {
          if (i === 0) {
            token_logprobs.push(null);
            top_logprobs.push(null);
          } else {
            token_logprobs.push(tokenLogprob(h, id));
            const p = preferred(h);
            top_logprobs.push({ [tokStr(p)]: tokenLogprob(h, p) });
          }
          h = step(h, id);
        });
        return {
          index,
          text: "",
          finish_reason: "length",
          logprobs: { tokens: ids.map(tokStr), token_logprobs, top_logprobs, text_offset: [] },
        };
      });
      res.writeHead(200, { "content-type": "application/json" });
      // Reversed on purpose: clients must order choices by their index.
      res.end(
        JSON.stringify({
          id: "cmpl-test",
          object: "text_completion",
          model: "det",
          choices: choices.reverse(),
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

/** The completions backend on the loopback server (the deterministic model's scores), `options` over these. */
const endpoint = (options: Partial<OpenAICompletionsOptions> = {}) =>
  createOpenAICompletionsModel({ baseUrl, model: "det", maxLength: 64, ...options });

describe("OpenAI-compatible completions backend", () => {
  it("gives the same per-item log-likelihoods and greedy flags as the local model", async () => {
    const remote = endpoint({ maxLength: 4096, batchSize: 5, concurrency: 3 });
    const local = createDetModel();
    const reqs = [
      { context: [1, 2, 3], continuation: [4, 5] },
      { context: [7], continuation: [9] },
      ...Array.from({ length: 20 }, (_, i) => ({ context: [10 + i, 20, 30], continuation: [i + 1] })),
    ];
    // A greedy continuation: the preferred token after the context.
    let h = H0;
    for (const t of [5, 6]) h = step(h, t);
    reqs.push({ context: [5, 6], continuation: [preferred(h)] });
    const a = await remote.logLikelihood(reqs);
    const b = await local.logLikelihood(reqs);
    expect(a).toHaveLength(b.length);
    a.forEach((r, i) => {
      expect(r.logprob).toBeCloseTo((b[i] as { logprob: number }).logprob, 9);
      expect(r.isGreedy).toBe(b[i]?.isGreedy);
    });
    expect(a.at(-1)?.isGreedy).toBe(true);
  });

  it("a whole task run through the endpoint equals the local run", async () => {
    const remote = endpoint({ maxLength: 4096 });
    const opts = { tasks: ["pubmedqa", "medqa_usmle"], limit: 10 } as const;
    const viaHttp = await evaluateShared({ ...opts, model: remote });
    const local = await evaluateShared({ ...opts, model: createDetModel() });
    for (const t of ["pubmedqa", "medqa_usmle"]) {
      const x = viaHttp.samples[t] ?? [];
      const y = local.samples[t] ?? [];
      for (const [i, s] of x.entries()) {
        for (const [j, r] of s.resps.entries()) expect(r[0]).toBeCloseTo(y[i]?.resps[j]?.[0] as number, 9);
      }
      expect(viaHttp.results.results[t]).toEqual(local.results.results[t]);
    }
  });

  it("takes lm-evaluation-harness's base_url spelling (.../v1/completions) as well as the server root", async () => {
    const req = [{ context: [1, 2], continuation: [3] }];
    const expected = await createDetModel().logLikelihood(req);
    for (const url of [`${baseUrl}/v1/completions`, `${baseUrl}/v1/`, baseUrl]) {
      const m = endpoint({ baseUrl: url });
      expect((await m.logLikelihood(req))[0]?.logprob).toBeCloseTo(expected[0]?.logprob as number, 9);
    }
  });

  it("retries 503s and then fails clearly; 4xx is not retried", async () => {
    const remote = endpoint({ retries: 2, backoffMs: 1 });
    failNext = 2;
    const ok = await remote.logLikelihood([{ context: [1], continuation: [2] }]);
    expect(ok).toHaveLength(1);
    failNext = 5;
    await expect(remote.logLikelihood([{ context: [1], continuation: [2] }])).rejects.toThrow(
      /after 3 attempts/,
    );
    failNext = 0;
    const wrongPath = endpoint({ baseUrl: `${baseUrl}/nope`, retries: 2, backoffMs: 1 });
    const before = calls;
    await expect(wrongPath.logLikelihood([{ context: [1], continuation: [2] }])).rejects.toThrow(
      /server answered 404/,
    );
    expect(calls - before).toBe(1);
  });

  it("times out a silent server", async () => {
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const m = endpoint({ baseUrl: url, model: "x", retries: 1, timeoutMs: 100, backoffMs: 1 });
    await expect(m.logLikelihood([{ context: [1], continuation: [2] }])).rejects.toThrow(/after 2 attempts/);
    silent.closeAllConnections();
    await new Promise((r) => silent.close(r));
  });
});
