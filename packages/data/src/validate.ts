/**
 * Schema validation of records (zod) and the bad-record policy. A record that fails its schema becomes a
 * HippoError INVALID_RECORD naming file, line/row and the offending key; the policy decides whether that
 * stops the build ("fail", the default) or is counted and kept for the manifest ("skip").
 */
import { describeValue, HippoError } from "@hippocrates/core";
import type { z } from "zod";
import { type RawRecord, type ReadOptions, type RecordLocation, readRawRecords } from "./read.js";

export type BadRecordPolicy = "fail" | "skip";

export interface BadRecordReport {
  /** Records skipped, per source file. */
  skipped: Record<string, number>;
  /** The first few errors (message, code, location), for the manifest. */
  examples: Array<{
    code: string;
    message: string;
    file?: string;
    line?: number;
    row?: number;
    key?: string;
  }>;
}

/** Collects bad records under a policy. One tracker per build. */
export interface BadRecords {
  readonly policy: BadRecordPolicy;
  /** Throws under "fail"; counts under "skip". */
  handle(error: HippoError): void;
  total(): number;
  report(): BadRecordReport;
}

export function createBadRecords(policy: BadRecordPolicy = "fail", keepExamples = 10): BadRecords {
  const skipped: Record<string, number> = {};
  const examples: BadRecordReport["examples"] = [];
  let total = 0;
  return {
    policy,
    handle(error) {
      if (policy === "fail") throw error;
      total++;
      const file = error.location.file ?? "?";
      skipped[file] = (skipped[file] ?? 0) + 1;
      if (examples.length < keepExamples)
        examples.push({ code: error.code, message: error.message, ...error.location });
    },
    total: () => total,
    report: () => ({ skipped: { ...skipped }, examples: examples.map((e) => ({ ...e })) }),
  };
}

type Issue = z.core.$ZodIssue;

/** For a union, the branch that came closest (fewest issues) says what is wrong, with its real key. */
function firstIssue(issues: readonly Issue[]): Issue | undefined {
  const issue = issues[0];
  if (issue?.code !== "invalid_union" || issue.errors.length === 0) return issue;
  let best = issue.errors[0] as Issue[];
  for (const branch of issue.errors) if (branch.length < best.length) best = branch;
  const inner = firstIssue(best);
  return inner ? { ...inner, path: [...issue.path, ...inner.path] } : issue;
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let v = value;
  for (const k of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

/** Validate one record; on failure, a HippoError pointing at the first bad key. */
export function validateRecord<S extends z.ZodType>(schema: S, raw: RawRecord): z.infer<S> {
  const result = schema.safeParse(raw.value);
  if (result.success) return result.data;
  const issue = firstIssue(result.error.issues);
  const path = issue?.path ?? [];
  const key = path.length > 0 ? path.map(String).join(".") : undefined;
  const got = valueAt(raw.value, path);
  let expected: string | undefined;
  if (issue?.code === "invalid_type") expected = String((issue as { expected?: unknown }).expected);
  throw new HippoError("INVALID_RECORD", issue?.message ?? "invalid record", {
    ...locationOf(raw.loc, key),
    expected,
    got: got === undefined ? "missing" : describeValue(got),
  });
}

function locationOf(loc: RecordLocation, key: string | undefined): RecordLocation & { key?: string } {
  // For a keyed JSON object the record key (e.g. PMID) and the field path are joined: "21645374.CONTEXTS".
  const joined = loc.key !== undefined ? (key !== undefined ? `${loc.key}.${key}` : loc.key) : key;
  const out: RecordLocation & { key?: string } = { file: loc.file };
  if (loc.line !== undefined) out.line = loc.line;
  if (loc.row !== undefined && loc.line === undefined) out.row = loc.row;
  if (joined !== undefined) out.key = joined;
  return out;
}

export interface ValidRecord<T> {
  value: T;
  loc: RecordLocation;
}

/** Stream the records of a file that pass `schema`; bad ones go through `bad` (throw or count). */
export async function* readValidRecords<S extends z.ZodType>(
  path: string,
  schema: S,
  bad: BadRecords,
  options: Omit<ReadOptions, "onParseError"> = {},
): AsyncGenerator<ValidRecord<z.infer<S>>> {
  for await (const raw of readRawRecords(path, { ...options, onParseError: (e) => bad.handle(e) })) {
    let value: z.infer<S>;
    try {
      value = validateRecord(schema, raw);
    } catch (e) {
      bad.handle(e as HippoError);
      continue;
    }
    yield { value, loc: raw.loc };
  }
}
