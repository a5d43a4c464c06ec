/**
 * Record readers for JSONL, JSON, CSV and Parquet. Each yields raw records with their location (file and
 * 1-based line, or 0-based row, and for keyed JSON objects the key) so that validation errors can say exactly
 * where a bad record is. JSONL, CSV and Parquet stream (line by line, record by record, row group by row group);
 * a JSON file is one document and is parsed whole (use JSONL for large corpora).
 */
import { createReadStream } from "node:fs";
import {
  checkRegularFile,
  describeValue,
  HippoError,
  isPlainObject,
  readJsonFile,
  readJsonl,
} from "@hippocrates/core";
import { parse as parseCsv } from "csv-parse";
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from "hyparquet";

export type RecordFormat = "jsonl" | "json" | "csv" | "parquet";

export interface RecordLocation {
  file: string;
  /** 1-based line (JSONL, CSV). */
  line?: number;
  /** 0-based record index (JSON arrays, CSV data rows, Parquet rows). */
  row?: number;
  /** Key of the record in a JSON object keyed by id (e.g. PubMedQA's PMID). */
  key?: string;
}

export interface RawRecord {
  value: unknown;
  loc: RecordLocation;
}

/** Called for a record that cannot even be parsed; it throws (policy "fail") or counts it (policy "skip"). */
export type ParseFailure = (error: HippoError) => void;

export interface ReadOptions {
  format?: RecordFormat;
  /** What to do with a line/row that cannot be parsed; default: throw. */
  onParseError?: ParseFailure;
}

export function detectFormat(path: string): RecordFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return "jsonl";
  if (lower.endsWith(".json")) return "json";
  if (lower.endsWith(".csv")) return "csv";
  if (lower.endsWith(".parquet")) return "parquet";
  throw new HippoError("INVALID_ARGUMENT", "cannot tell the record format from the file name", {
    file: path,
    expected: ".jsonl, .ndjson, .json, .csv or .parquet (or pass format)",
    got: JSON.stringify(path.slice(path.lastIndexOf("/") + 1)),
  });
}

const rethrow: ParseFailure = (e) => {
  throw e;
};

/** Read the records of a file in any supported format. */
export async function* readRawRecords(path: string, options: ReadOptions = {}): AsyncGenerator<RawRecord> {
  const format = options.format ?? detectFormat(path);
  const onError = options.onParseError ?? rethrow;
  await checkRegularFile(path);
  switch (format) {
    case "jsonl":
      yield* readJsonlRecords(path, onError);
      return;
    case "json":
      yield* readJson(path);
      return;
    case "csv":
      yield* readCsv(path, onError);
      return;
    case "parquet":
      yield* readParquet(path);
      return;
  }
}

async function* readJsonlRecords(path: string, onError: ParseFailure): AsyncGenerator<RawRecord> {
  for await (const { value, line } of readJsonl(path, { onInvalidLine: onError }))
    yield { value, loc: { file: path, line } };
}

async function* readJson(path: string): AsyncGenerator<RawRecord> {
  const doc = await readJsonFile(path);
  if (Array.isArray(doc)) {
    for (let row = 0; row < doc.length; row++) yield { value: doc[row], loc: { file: path, row } };
    return;
  }
  if (isPlainObject(doc)) {
    // An object keyed by id (PubMedQA's ori_pqal.json: PMID -> record). The key travels with the record.
    let row = 0;
    for (const [key, value] of Object.entries(doc)) yield { value, loc: { file: path, row: row++, key } };
    return;
  }
  throw new HippoError(
    "INVALID_FORMAT",
    "a JSON dataset must be an array of records or an object of records",
    {
      file: path,
      expected: "array or object",
      got: describeValue(doc),
    },
  );
}

async function* readCsv(path: string, onError: ParseFailure): AsyncGenerator<RawRecord> {
  // Header row gives the column names; a row with a different number of fields is a structural error that
  // csv-parse reports with its line, and (policy "skip") we pass over it through on_skip.
  const input = createReadStream(path);
  const parser = input.pipe(
    parseCsv({
      columns: true,
      bom: true,
      info: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      on_skip: (err) => {
        const e = err as (Error & { lines?: number }) | undefined;
        onError(
          new HippoError("INVALID_FORMAT", `malformed CSV row: ${e?.message ?? "unknown error"}`, {
            file: path,
            line: e?.lines,
            expected: "the same number of fields as the header",
          }),
        );
      },
    }),
  );
  let row = 0;
  try {
    for await (const item of parser as AsyncIterable<{
      record: Record<string, string>;
      info: { lines: number };
    }>) {
      // Records are rebuilt without a prototype so a column named `__proto__` stays data.
      const value = Object.create(null) as Record<string, string>;
      for (const [k, v] of Object.entries(item.record)) value[k] = v;
      yield { value, loc: { file: path, line: item.info.lines, row: row++ } };
    }
  } catch (e) {
    if (e instanceof HippoError) throw e;
    const err = e as Error & { lines?: number; code?: string };
    throw new HippoError("INVALID_FORMAT", `malformed CSV: ${err.message}`, {
      file: path,
      line: err.lines,
      cause: e,
    });
  } finally {
    parser.destroy();
    input.destroy();
  }
}

/** Parquet INT64 arrives as bigint; turn safe integers into numbers so schemas see ordinary JSON values. */
function jsonify(v: unknown): unknown {
  if (typeof v === "bigint")
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v.toString();
  if (Array.isArray(v)) return v.map(jsonify);
  if (v instanceof Date) return v.toISOString();
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
    const out = Object.create(null) as Record<string, unknown>;
    for (const [k, x] of Object.entries(v)) out[k] = jsonify(x);
    return out;
  }
  return v;
}

async function* readParquet(path: string): AsyncGenerator<RawRecord> {
  const file = await asyncBufferFromFile(path);
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (e) {
    throw new HippoError("INVALID_FORMAT", `not a Parquet file: ${(e as Error).message}`, {
      file: path,
      expected: "a Parquet file (magic PAR1 at both ends)",
      cause: e,
    });
  }
  // One row group at a time keeps memory bounded by the largest row group, not the file.
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = (await parquetReadObjects({ file, metadata, rowStart, rowEnd })) as Record<string, unknown>[];
    } catch (e) {
      throw new HippoError(
        "INVALID_FORMAT",
        `cannot decode Parquet rows ${rowStart}..${rowEnd - 1}: ${(e as Error).message}`,
        {
          file: path,
          row: rowStart,
          cause: e,
        },
      );
    }
    for (let i = 0; i < rows.length; i++)
      yield { value: jsonify(rows[i]), loc: { file: path, row: rowStart + i } };
    rowStart = rowEnd;
  }
}
