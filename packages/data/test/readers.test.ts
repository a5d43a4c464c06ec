import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ChatRole, isHippoError, silentProgress } from "@hippocrates/core";
import { parquetWriteFile } from "hyparquet-writer";
import { describe, expect, it } from "vitest";
import {
  type BuildCptOptions,
  buildCptDataset,
  buildSftDataset,
  type CptSource,
  createBadRecords,
  readCptDocuments,
  readInstructions,
  readRawRecords,
} from "../src/index.js";
import { CONVERSATION, collect, failure, listAll, llama2, readJsonl, useTempDir } from "./helpers.js";

/** ShareGPT's `from` for each role. */
const SHAREGPT_FROM: Record<ChatRole, string> = { system: "system", user: "human", assistant: "gpt" };

describe("readers", () => {
  const t = useTempDir();

  it("reads PMC-Patients from CSV with quoted, multi-line fields, and keeps line numbers", async () => {
    const file = join(t.dir, "pmc.csv");
    await writeFile(
      file,
      'patient_id,patient_uid,PMID,title,patient,age,gender\n0,7665777-1,33492400,"Case, one","A 60-year-old man\nwith ""chest pain"".","[[60.0, \'year\']]",M\n1,7665777-2,33492400,t2,A 39-year-old woman.,x,F\n',
    );
    const docs = await collect(readCptDocuments({ kind: "pmc-patients", path: file }, createBadRecords()));
    expect(docs).toEqual([
      { id: "pmc-patients:7665777-1", source: "pmc-patients", text: 'A 60-year-old man\nwith "chest pain".' },
      { id: "pmc-patients:7665777-2", source: "pmc-patients", text: "A 39-year-old woman." },
    ]);
    const raw = await collect(readRawRecords(file));
    expect(raw.map((r) => r.loc.line)).toEqual([3, 4]);
  });

  it("reads a real Parquet file (written by hyparquet-writer) row group by row group", async () => {
    const file = join(t.dir, "guidelines.parquet");
    const n = 25;
    parquetWriteFile({
      filename: file,
      columnData: [
        { name: "id", data: Array.from({ length: n }, (_, i) => `g${i}`), type: "STRING" },
        {
          name: "clean_text",
          data: Array.from({ length: n }, (_, i) => `Guideline number ${i}.`),
          type: "STRING",
        },
        { name: "year", data: BigInt64Array.from({ length: n }, (_, i) => BigInt(2000 + i)), type: "INT64" },
      ],
      rowGroupSize: 10,
    });
    const raw = await collect(readRawRecords(file));
    expect(raw).toHaveLength(n);
    expect(raw[13]).toEqual({
      value: expect.objectContaining({ id: "g13", clean_text: "Guideline number 13.", year: 2013 }),
      loc: { file, row: 13 },
    });
    const docs = await collect(readCptDocuments({ kind: "guidelines", path: file }, createBadRecords()));
    expect(docs.map((d) => d.id).slice(0, 3)).toEqual(["guidelines:g0", "guidelines:g1", "guidelines:g2"]);
  });

  it("reads Alpaca (JSON array), ShareGPT (JSONL) and chat records", async () => {
    const alpaca = join(t.dir, "alpaca.json");
    await writeFile(
      alpaca,
      JSON.stringify([
        { instruction: "What is hypertension?", input: "", output: "High blood pressure." },
        { instruction: "Summarise the note.", input: "Patient has a fever.", output: "Fever." },
      ]),
    );
    const sharegpt = join(t.dir, "sharegpt.jsonl");
    await writeFile(
      sharegpt,
      `${JSON.stringify({ id: "s1", conversations: CONVERSATION.map(({ role, content }) => ({ from: SHAREGPT_FROM[role], value: content })) })}\n`,
    );
    const chat = join(t.dir, "chat.jsonl");
    await writeFile(
      chat,
      `${JSON.stringify({
        id: 7,
        messages: [
          { role: "user", content: "Q" },
          { role: "assistant", content: "A" },
        ],
      })}\n`,
    );
    const bad = createBadRecords();
    const a = await collect(readInstructions({ format: "alpaca", path: alpaca }, bad));
    expect(a[1]).toEqual({
      id: "alpaca:R1",
      source: "alpaca",
      messages: [
        { role: "user", content: "Summarise the note.\nPatient has a fever." },
        { role: "assistant", content: "Fever." },
      ],
    });
    expect(a[0]?.messages[0]?.content).toBe("What is hypertension?");
    const s = await collect(readInstructions({ format: "sharegpt", path: sharegpt, name: "sg" }, bad));
    expect(s[0]?.messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "user", "assistant"]);
    expect(s[0]?.id).toBe("sg:s1");
    const c = await collect(readInstructions({ format: "chat", path: chat }, bad));
    expect(c[0]?.id).toBe("chat:7");
  });
});

describe("bad input: clear errors, nothing half-written", () => {
  const t = useTempDir();

  async function expectNothingWritten(outParent: string) {
    expect(existsSync(join(outParent, "out"))).toBe(false);
    expect((await listAll(outParent)).filter((n) => n.includes(".tmp-"))).toEqual([]);
  }

  /** `content` as `<folder>/<name>` in a folder of its own (where a failed build must leave nothing). */
  async function fileInFolder(folder: string, name: string, content: string) {
    const dir = join(t.dir, folder);
    await mkdir(dir);
    const file = join(dir, name);
    await writeFile(file, content);
    return { dir, file };
  }

  /** The error of a CPT build of one source into `<dir>/out`. */
  async function cptFailure(dir: string, source: CptSource, options: Partial<BuildCptOptions> = {}) {
    const tokenizer = await llama2();
    return failure(
      buildCptDataset({ sources: [source], outDir: join(dir, "out"), tokenizer, ...options }, silentProgress),
    );
  }

  it("a truncated JSONL line: INVALID_FORMAT with file and line; policy skip counts it", async () => {
    const { dir, file } = await fileInFolder(
      "jsonl",
      "guidelines.jsonl",
      '{"id":"a","text":"First guideline."}\n{"id":"b","text":"Second guideline."}\n{"id":"c","text":"Trunc',
    );
    const e = await cptFailure(dir, { kind: "guidelines", path: file });
    expect(e.code).toBe("INVALID_FORMAT");
    expect(e.location).toMatchObject({ file, line: 3 });
    expect(e.message).toContain(`${file}:3`);
    await expectNothingWritten(dir);

    const s = await buildCptDataset(
      {
        sources: [{ kind: "guidelines", path: file }],
        outDir: join(dir, "ok"),
        tokenizer: await llama2(),
        onBadRecord: "skip",
      },
      silentProgress,
    );
    expect(s.documents).toBe(2);
    expect(s.skippedRecords).toBe(1);
    expect(s.manifest.badRecords.skipped[file]).toBe(1);
    expect(s.manifest.badRecords.examples[0]).toMatchObject({ code: "INVALID_FORMAT", line: 3 });
  });

  it("a CSV with a missing column: INVALID_RECORD naming the key and line", async () => {
    const { dir, file } = await fileInFolder("csv", "pmc.csv", "patient_uid,PMID,text\n1-1,123,A woman.\n");
    const e = await cptFailure(dir, { kind: "pmc-patients", path: file });
    expect(e.code).toBe("INVALID_RECORD");
    expect(e.location).toMatchObject({ file, line: 2, key: "patient" });
    expect(e.got).toBe("missing");
    await expectNothingWritten(dir);
  });

  it("a CSV row with too few fields: INVALID_FORMAT with its line", async () => {
    const file = join(t.dir, "short.csv");
    await writeFile(file, "patient_uid,patient\n1-1,A woman.\n1-2\n");
    const e = await failure(
      collect(readCptDocuments({ kind: "pmc-patients", path: file }, createBadRecords())),
    );
    expect(e.code).toBe("INVALID_FORMAT");
    expect(e.location).toMatchObject({ file, line: 3 });
  });

  it("a record with the wrong type: INVALID_RECORD with key, expected and got", async () => {
    const { dir, file } = await fileInFolder(
      "type",
      "medqa.jsonl",
      `${JSON.stringify({ question: "Q?", options: { A: "x", B: "y" }, answer_idx: "A" })}\n${JSON.stringify({ question: "Q2?", options: { A: "x", B: 3 }, answer_idx: "A" })}\n`,
    );
    const e = await failure(
      buildSftDataset(
        { sources: [{ format: "medqa", path: file }], outDir: join(dir, "out") },
        silentProgress,
      ),
    );
    expect(e.code).toBe("INVALID_RECORD");
    expect(e.location).toMatchObject({ file, line: 2, key: "options.B" });
    expect(e.expected).toBe("string");
    expect(e.got).toBe("number 3");
    await expectNothingWritten(dir);
  });

  it("a keyed JSON record with a wrong field names the PMID and the field", async () => {
    const file = join(t.dir, "pqal.json");
    await writeFile(
      file,
      JSON.stringify({
        "111": { QUESTION: "q", CONTEXTS: ["c"], final_decision: "yes" },
        "222": { QUESTION: "q", CONTEXTS: "c", final_decision: "yes" },
      }),
    );
    const e = await failure(
      collect(readInstructions({ format: "pubmedqa", path: file }, createBadRecords())),
    );
    expect(e.location).toMatchObject({ file, key: "222.CONTEXTS" });
  });

  it("a Parquet file that is not Parquet: INVALID_FORMAT naming the file, even under policy skip", async () => {
    const { dir, file } = await fileInFolder("pq", "data.parquet", "id,text\n1,this is a CSV in disguise\n");
    const e = await cptFailure(dir, { kind: "text", path: file }, { onBadRecord: "skip" });
    expect(e.code).toBe("INVALID_FORMAT");
    expect(e.location.file).toBe(file);
    expect(e.message).toMatch(/not a Parquet file/);
    await expectNothingWritten(dir);
  });

  it("an unknown extension or a missing file is a clear error", async () => {
    expect(
      isHippoError(await failure(collect(readRawRecords(join(t.dir, "x.txt")))), "INVALID_ARGUMENT"),
    ).toBe(true);
    expect(
      isHippoError(await failure(collect(readRawRecords(join(t.dir, "missing.jsonl")))), "NOT_FOUND"),
    ).toBe(true);
  });

  it("__proto__ keys stay data", async () => {
    const file = join(t.dir, "proto.jsonl");
    await writeFile(file, '{"text":"ok","__proto__":{"polluted":true}}\n');
    const raw = await collect(readRawRecords(file));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(raw[0]?.value)).toBeNull();
    expect(await readJsonl(file)).toHaveLength(1);
  });
});
