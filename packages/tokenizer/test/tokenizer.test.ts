/** Loading a folder, BOS/EOS policy, batch encode/decode, offsets, round trips, and bad input. */
import { isHippoError } from "@hippocrates/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HfTokenizer, loadTokenizer } from "../src/index.js";
import { LLAMA2, MISTRAL, readMedQa } from "./helpers.js";
import { makeFolder, removeFolder } from "./tmpdir.js";

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

const questions = readMedQa().map((r) => r.question);
const folders: string[] = [];
const folder = (from: string | null, files: Record<string, string | object>) => {
  const dir = makeFolder(from, files);
  folders.push(dir);
  return dir;
};
afterAll(() => folders.forEach(removeFolder));

describe("loading the shared folders", () => {
  it("Llama-2: special tokens, flags and limits from tokenizer_config.json / special_tokens_map.json", async () => {
    const t = await loadTokenizer(LLAMA2);
    expect(t).toMatchObject({
      dir: LLAMA2,
      vocabSize: 32000,
      bosToken: "<s>",
      eosToken: "</s>",
      unkToken: "<unk>",
      padToken: "<unk>",
      bosTokenId: 1,
      eosTokenId: 2,
      unkTokenId: 0,
      padTokenId: 0,
      addBosToken: true,
      addEosToken: false,
      modelMaxLength: 2048,
      chatTemplate: null,
    });
  });

  it("Mistral: no pad token, transformers' 'unbounded' max length (1e30) is null", async () => {
    const t = await loadTokenizer(MISTRAL);
    expect(t).toMatchObject({ padToken: null, padTokenId: null, modelMaxLength: null, addBosToken: true });
  });

  it("token <-> id lookups", async () => {
    const t = await loadTokenizer(LLAMA2);
    expect(t.tokenToId("▁yes")).toBe(4874);
    expect(t.idToToken(4874)).toBe("▁yes");
    expect(t.idToToken(13)).toBe("<0x0A>");
    expect(t.tokenToId("not a token at all")).toBeNull();
    expect(t.idToToken(32000)).toBeNull();
    expect(t.idToToken(-1)).toBeNull();
    expect(t.idToToken(1.5)).toBeNull();
  });
});

describe.each([
  { name: "llama2", dir: LLAMA2 },
  { name: "mistral", dir: MISTRAL },
])("$name BOS/EOS policy", ({ dir }) => {
  it("default: BOS as HF adds it (add_bos_token true), no EOS; addSpecialTokens false: neither", async () => {
    const t = await loadTokenizer(dir);
    const plain = await t.encode("Hello world", { addSpecialTokens: false });
    expect(plain[0]).not.toBe(1);
    expect(await t.encode("Hello world")).toEqual([1, ...plain]);
    expect(await t.encode("")).toEqual([1]);
    expect(await t.encode("", { addSpecialTokens: false })).toEqual([]);
  });

  it("options override the config: add EOS, drop BOS", async () => {
    const plain = await (await loadTokenizer(dir)).encode("Hello world", { addSpecialTokens: false });
    const eos = await loadTokenizer(dir, { addEosToken: true });
    expect(eos.addEosToken).toBe(true);
    expect(await eos.encode("Hello world")).toEqual([1, ...plain, 2]);
    expect(await eos.encode("Hello world", { addSpecialTokens: false })).toEqual(plain);
    const neither = await loadTokenizer(dir, { addBosToken: false });
    expect(neither.addBosToken).toBe(false);
    expect(await neither.encode("Hello world")).toEqual(plain);
    const eosOnly = await loadTokenizer(dir, { addBosToken: false, addEosToken: true });
    expect(await eosOnly.encode("Hello world")).toEqual([...plain, 2]);
  });

  it("the folder's tokenizer_config.json flags are honoured", async () => {
    const d = folder(dir, {
      "tokenizer_config.json": { add_bos_token: false, add_eos_token: true, eos_token: "</s>" },
    });
    const t = await loadTokenizer(d);
    expect([t.addBosToken, t.addEosToken]).toEqual([false, true]);
    const plain = await t.encode("Hi", { addSpecialTokens: false });
    expect(await t.encode("Hi")).toEqual([...plain, 2]);
  });

  it("special tokens in the text are matched as special tokens, as HF does", async () => {
    const t = await loadTokenizer(dir);
    const ids = await t.encode("<s>Hi</s>", { addSpecialTokens: false });
    expect(ids[0]).toBe(1);
    expect(ids.at(-1)).toBe(2);
  });
});

describe("a folder with only tokenizer.json", () => {
  it("keeps the tokenizer.json post-processor and reads the flags back from it", async () => {
    const t = await loadTokenizer(folder(LLAMA2, {}));
    // No config: no special token names, so no ids; the template of tokenizer.json still adds <s>.
    expect([t.bosTokenId, t.eosTokenId, t.addBosToken, t.chatTemplate]).toEqual([null, null, false, null]);
    expect(await t.encode("Hi")).toEqual([1, 6324]);
  });

  it("special tokens from special_tokens_map.json alone, as AddedToken dicts", async () => {
    const t = await loadTokenizer(
      folder(LLAMA2, {
        "special_tokens_map.json": {
          bos_token: { content: "<s>", lstrip: false },
          eos_token: { content: "</s>" },
        },
      }),
    );
    expect([t.bosTokenId, t.eosTokenId, t.addBosToken, t.addEosToken]).toEqual([1, 2, true, false]);
  });

  it("a Llama-class config without token names gets LlamaTokenizerFast's defaults <s>, </s>, <unk>", async () => {
    const t = await loadTokenizer(
      folder(LLAMA2, { "tokenizer_config.json": { tokenizer_class: "LlamaTokenizerFast" } }),
    );
    expect([t.bosTokenId, t.eosTokenId, t.unkTokenId, t.padTokenId, t.addBosToken]).toEqual([
      1,
      2,
      0,
      null,
      true,
    ]);
  });

  it("special_tokens_map.json overrides tokenizer_config.json, as transformers does", async () => {
    const t = await loadTokenizer(
      folder(LLAMA2, {
        "tokenizer_config.json": { pad_token: "<s>", tokenizer_class: "LlamaTokenizer" },
        "special_tokens_map.json": { pad_token: { __type: "AddedToken", content: "</s>" } },
      }),
    );
    expect([t.padToken, t.padTokenId]).toEqual(["</s>", 2]);
  });
});

describe.each([
  { name: "llama2", dir: LLAMA2, roundTripExceptions: [] as number[] },
  // Mistral drops the one leading space of row 243 (see README: Metaspace prepend_scheme "first").
  { name: "mistral", dir: MISTRAL, roundTripExceptions: [243] },
])("$name batch, offsets, decode", ({ dir, roundTripExceptions }) => {
  let t: HfTokenizer;
  beforeAll(async () => {
    t = await loadTokenizer(dir);
  });

  it("encodeBatch equals one-by-one encode; decodeBatch equals one-by-one decode", async () => {
    const some = questions.slice(0, 40);
    for (const addSpecialTokens of [true, false]) {
      const batch = await t.encodeBatch(some, { addSpecialTokens });
      expect(batch).toEqual(await Promise.all(some.map((q) => t.encode(q, { addSpecialTokens }))));
      const texts = await t.decodeBatch(batch, { skipSpecialTokens: true });
      expect(texts).toEqual(
        await Promise.all(batch.map((ids) => t.decode(ids, { skipSpecialTokens: true }))),
      );
    }
    expect(await t.encodeBatch([])).toEqual([]);
    expect(await t.decodeBatch([])).toEqual([]);
  });

  it("decode(encode(q)) === q on every MedQA question (no special tokens), except the documented rows", async () => {
    const ids = await t.encodeBatch(questions, { addSpecialTokens: false });
    const back = await t.decodeBatch(ids);
    const differing = questions.flatMap((q, row) => (back[row] === q ? [] : [row]));
    expect(differing).toEqual(roundTripExceptions);
    for (const row of roundTripExceptions) expect(back[row]).toBe(questions[row]!.slice(1));
  });

  it("decode keeps or skips special tokens", async () => {
    const ids = await t.encode("Hello world");
    expect(await t.decode([...ids, 2])).toBe("<s> Hello world</s>");
    expect(await t.decode([...ids, 2], { skipSpecialTokens: true })).toBe("Hello world");
  });

  it("offsets index the input string (UTF-16), also after characters outside the BMP", async () => {
    const text = "Answer: 😀 yes\n°C";
    const enc = await t.encodeWithOffsets(text);
    expect(enc.ids).toEqual(await t.encode(text));
    expect(enc.tokens).toHaveLength(enc.ids.length);
    expect(enc.offsets[0]).toEqual([0, 0]); // <s>
    const spans = enc.offsets.slice(1).map(([s, e]) => text.slice(s, e));
    expect(spans).toContain("😀"); // byte-fallback tokens of the emoji all point at the whole character
    expect(spans.at(-1)).toBe("C");
    expect(spans).toContain(" yes");
    // Offsets never go backwards and never leave the string.
    for (const [s, e] of enc.offsets) expect(0 <= s && s <= e && e <= text.length).toBe(true);
  });
});

describe("bad input", () => {
  it("a missing folder or tokenizer.json names the file", async () => {
    const e = await rejection(loadTokenizer(folder(null, {})));
    expect(isHippoError(e, "NOT_FOUND")).toBe(true);
    expect(e.message).toMatch(/tokenizer\.json/);
  });

  it("bad JSON names the file", async () => {
    for (const [name, from] of [
      ["tokenizer.json", null],
      ["tokenizer_config.json", LLAMA2],
      ["special_tokens_map.json", LLAMA2],
    ] as const) {
      const e = await rejection(loadTokenizer(folder(from, { [name]: "{not json" })));
      expect(isHippoError(e, "INVALID_FORMAT"), name).toBe(true);
      expect(e.message).toContain(name);
    }
  });

  it("valid JSON that is not a tokenizer names the file", async () => {
    const e = await rejection(loadTokenizer(folder(null, { "tokenizer.json": { model: { type: "Nope" } } })));
    expect(isHippoError(e, "INVALID_FORMAT")).toBe(true);
    expect(e.message).toContain("tokenizer.json");
  });

  it("bad config values name the file and key", async () => {
    const cases: [object, RegExp][] = [
      [{ add_bos_token: "yes" }, /add_bos_token/],
      [{ bos_token: 5 }, /bos_token/],
      [{ bos_token: "<nope>" }, /bos_token.*not in the vocabulary/],
      [{ model_max_length: -3 }, /model_max_length/],
      [{ chat_template: [{ name: "x" }] }, /chat_template\[0\]/],
      [{ add_bos_token: true, bos_token: null, tokenizer_class: "LlamaTokenizer" }, /no bos_token/],
    ];
    for (const [config, pattern] of cases) {
      const e = await rejection(loadTokenizer(folder(LLAMA2, { "tokenizer_config.json": config })));
      expect(isHippoError(e), JSON.stringify(config)).toBe(true);
      expect(e.message).toContain("tokenizer_config.json");
      expect(e.message).toMatch(pattern);
    }
  });

  it("prototype keys in configs stay data", async () => {
    const t = await loadTokenizer(
      folder(LLAMA2, {
        "tokenizer_config.json": '{"__proto__": {"add_bos_token": false}, "bos_token": "<s>"}',
      }),
    );
    // "__proto__" is an ordinary (unknown) key: no flag is set, so tokenizer.json's template (BOS) stays.
    expect(t.addBosToken).toBe(true);
    expect(({} as Record<string, unknown>).add_bos_token).toBeUndefined();
  });

  it("bad ids and texts are HippoErrors, not crashes", async () => {
    const t = await loadTokenizer(LLAMA2);
    for (const ids of [[32000], [-1], [1.5], [Number.NaN], ["1"]] as unknown as number[][]) {
      expect(isHippoError(await rejection(t.decode(ids)), "INVALID_ARGUMENT"), String(ids)).toBe(true);
    }
    expect(isHippoError(await rejection(t.decodeBatch([[1], [99999]])), "INVALID_ARGUMENT")).toBe(true);
    expect(isHippoError(await rejection(t.encode(42 as unknown as string)), "INVALID_ARGUMENT")).toBe(true);
    expect(
      isHippoError(await rejection(t.encodeBatch("abc" as unknown as string[])), "INVALID_ARGUMENT"),
    ).toBe(true);
    expect(
      isHippoError(await rejection(t.decodeBatch([1, 2] as unknown as number[][])), "INVALID_ARGUMENT"),
    ).toBe(true);
    expect(
      isHippoError(await rejection(t.encodeBatch(["a", null as unknown as string])), "INVALID_ARGUMENT"),
    ).toBe(true);
  });
});
