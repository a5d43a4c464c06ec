/** encodePair: the lm-evaluation-harness context/continuation split, on the spec's cases and MedQA prompts. */
import { isHippoError } from "@hippocrates/core";
import { beforeAll, describe, expect, it } from "vitest";
import { type HfTokenizer, loadTokenizer, moveTrailingWhitespace } from "../src/index.js";
import { LLAMA2, MISTRAL, readMedQa } from "./helpers.js";

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

describe("moveTrailingWhitespace (Python str.rstrip semantics)", () => {
  it("moves spaces, tabs and newlines from the context to the continuation", () => {
    expect(moveTrailingWhitespace("Answer: ", "yes")).toEqual(["Answer:", " yes"]);
    expect(moveTrailingWhitespace("Answer:\n\t ", "yes")).toEqual(["Answer:", "\n\t yes"]);
    expect(moveTrailingWhitespace("Answer:", " yes")).toEqual(["Answer:", " yes"]);
    expect(moveTrailingWhitespace("   ", "x")).toEqual(["", "   x"]);
  });

  it("uses Python's whitespace set, not JavaScript's", () => {
    // "\x1c".isspace() and "\x85".isspace() are True in Python; "\ufeff".isspace() is False.
    expect(moveTrailingWhitespace("a\x1c\x85\u00a0\u3000", "b")).toEqual(["a", "\x1c\x85\u00a0\u3000b"]);
    expect(moveTrailingWhitespace("a\ufeff", "b")).toEqual(["a\ufeff", "b"]);
  });

  // No wall-clock assertion (a loaded machine made a 500 ms bound flaky): a backtracking regex is quadratic,
  // ~10^12 steps on this input, so it would not finish within this test's timeout (60 s; the linear scan takes
  // milliseconds), and the test fails by timing out instead.
  it("is linear on long runs of inner whitespace (no backtracking regex)", { timeout: 60_000 }, () => {
    const context = `${" ".repeat(1_000_000)}x${" ".repeat(3)}`;
    expect(moveTrailingWhitespace(context, "y")[1]).toBe("   y");
  });
});

describe.each([
  // Llama-2's legacy normalizer encodes " yes" alone as "▁▁yes"; Mistral's Metaspace adds no second "▁".
  { name: "llama2", dir: LLAMA2, yes: 4874, alone: [29871, 4874] },
  { name: "mistral", dir: MISTRAL, yes: 5081, alone: [5081] },
])("$name encodePair", ({ dir, yes, alone }) => {
  let tok: HfTokenizer;
  beforeAll(async () => {
    tok = await loadTokenizer(dir);
  });

  it('"Answer:" + " yes": the continuation is the tail of the whole encoding', async () => {
    const noBos = { addSpecialTokens: false };
    const pair = await tok.encodePair("Answer:", " yes", noBos);
    const whole = await tok.encode("Answer: yes", noBos);
    expect(pair.context).toEqual(await tok.encode("Answer:", noBos));
    expect([...pair.context, ...pair.continuation]).toEqual(whole);
    expect(pair.continuation).toEqual([yes]); // "▁yes", as in running text
    expect(await tok.encode(" yes", noBos)).toEqual(alone);
  });

  it('a context ending in a space: "Answer: " + "yes" moves the space ("yes" -> " yes")', async () => {
    const moved = await tok.encodePair("Answer: ", "yes", { addSpecialTokens: false });
    expect(moved).toEqual(await tok.encodePair("Answer:", " yes", { addSpecialTokens: false }));
    expect(moved.continuation).toEqual([yes]);
  });

  it("BOS goes to the context only; the continuation is the same with or without it", async () => {
    const withBos = await tok.encodePair("Answer:", " yes");
    const without = await tok.encodePair("Answer:", " yes", { addSpecialTokens: false });
    expect(withBos.context).toEqual([1, ...without.context]);
    expect(withBos.continuation).toEqual(without.continuation);
  });

  it("an empty continuation is an error", async () => {
    const e = await rejection(tok.encodePair("Answer:", ""));
    expect(isHippoError(e, "INVALID_ARGUMENT")).toBe(true);
    expect((e as Error).message).toMatch(/continuation/);
    expect(isHippoError(await rejection(tok.encodePair("", "")), "INVALID_ARGUMENT")).toBe(true);
  });

  it("an empty context becomes the EOS token, as the harness does", async () => {
    const pair = await tok.encodePair("", "Hello world");
    expect(pair.context).toEqual([tok.eosTokenId]);
    expect(pair.continuation).toEqual(await tok.encode("Hello world", { addSpecialTokens: false }));
  });

  it("MedQA prompts with multi-token options: each option is the tail of the whole prompt", async () => {
    const rows = readMedQa().slice(0, 20);
    let multiToken = 0;
    for (const row of rows) {
      const letters = Object.keys(row.options);
      const context = `${row.question}\n${letters.map((l) => `(${l}) ${row.options[l]}`).join(" ")}\nAnswer:`;
      const ctxIds = await tok.encode(context, { addSpecialTokens: false });
      for (const letter of letters) {
        const option = row.options[letter]!;
        const pair = await tok.encodePair(context, ` ${option}`, { addSpecialTokens: false });
        expect(pair.context).toEqual(ctxIds);
        expect([...pair.context, ...pair.continuation]).toEqual(
          await tok.encode(`${context} ${option}`, { addSpecialTokens: false }),
        );
        // The split falls on the boundary: the continuation's tokens spell exactly " " + option.
        expect(await tok.decode(pair.continuation)).toBe(option);
        if (pair.continuation.length > 1) multiToken++;
      }
    }
    expect(multiToken).toBeGreaterThan(40);
  });

  it("refuses to split with a template that appends EOS (the slice would be off by one)", async () => {
    const eos = await loadTokenizer(dir, { addEosToken: true });
    expect(isHippoError(await rejection(eos.encodePair("Answer:", " yes")), "UNSUPPORTED")).toBe(true);
    // Without special tokens there is no EOS and the split is fine.
    expect((await eos.encodePair("Answer:", " yes", { addSpecialTokens: false })).continuation).toEqual([
      yes,
    ]);
  });
});
