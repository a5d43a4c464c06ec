/**
 * Validation problems as the user reads them: `stages[2].learning_rate: expected number, got string`,
 * `stages[0].learning_rat: unknown key "learning_rat"; did you mean "learning_rate"?`.
 *
 * Every schema here is a Standard Schema (https://standardschema.dev): the pipeline's own (zod 4) and each
 * stage's `settings`, whichever library wrote it. Standard Schema issues carry a message and a path; zod's
 * carry more (`code`, `expected`, `keys`, `values`), which we use when present to write the message the same
 * way for every schema. The value at the issue's path is looked up in the input itself, so "got string"
 * needs nothing from the library. Known keys for a did-you-mean are read from zod object schemas; other
 * libraries get the plain "unknown key".
 */
import { HippoError, isPlainObject, type StandardSchemaV1, unknownNameMessage } from "@hippocrates/core";

/** One validation problem: where (a key path) and what. */
export interface ConfigIssue {
  path: string;
  message: string;
}

type Segment = PropertyKey;

/** `["stages", 1, "lr"]` -> `stages[1].lr`. */
export function formatPath(path: readonly Segment[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out || "(top level)";
}

export function typeName(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function segments(path: StandardSchemaV1.Issue["path"]): Segment[] {
  return (path ?? []).map((p) => (typeof p === "object" && p !== null && "key" in p ? p.key : p));
}

function valueAt(value: unknown, path: readonly Segment[]): unknown {
  let v = value;
  for (const key of path) {
    if (Array.isArray(v) && typeof key === "number") v = v[key];
    else if (isPlainObject(v) && typeof key === "string") v = Object.hasOwn(v, key) ? v[key] : undefined;
    else return undefined;
  }
  return v;
}

/** The `_zod.def` of a zod 4 schema, or undefined for anything else. */
function zodDef(schema: unknown): Record<string, unknown> | undefined {
  if (schema === null || typeof schema !== "object") return undefined;
  const internals = (schema as { _zod?: unknown })._zod;
  if (!isPlainObject(internals) || !isPlainObject(internals.def)) return undefined;
  return internals.def;
}

/** The keys an object schema accepts at `path` (zod 4 only; [] when unknown). */
export function knownKeysAt(schema: unknown, path: readonly Segment[]): string[] {
  const def = zodDef(schema);
  if (!def) return [];
  const [head, ...rest] = path;
  switch (def.type) {
    case "object": {
      const shape = isPlainObject(def.shape) ? def.shape : {};
      if (head === undefined) return Object.keys(shape);
      return typeof head === "string" && Object.hasOwn(shape, head) ? knownKeysAt(shape[head], rest) : [];
    }
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "nonoptional":
    case "readonly":
    case "catch":
      return knownKeysAt(def.innerType, path);
    case "pipe":
      return knownKeysAt(def.in, path);
    case "union":
      return [
        ...new Set((Array.isArray(def.options) ? def.options : []).flatMap((o) => knownKeysAt(o, path))),
      ];
    case "array":
      return typeof head === "number" ? knownKeysAt(def.element, rest) : [];
    default:
      return [];
  }
}

/** What zod adds to a Standard Schema issue (all optional: other libraries do not send them). */
interface IssueExtras {
  code?: string;
  expected?: string;
  keys?: string[];
  values?: unknown[];
  errors?: StandardSchemaV1.Issue[][];
}

function extras(issue: StandardSchemaV1.Issue): IssueExtras {
  return issue as StandardSchemaV1.Issue & IssueExtras;
}

/** Standard Schema issues -> our issues, with paths under `prefix` (e.g. `["stages", 2]`). */
export function schemaIssues(
  issues: readonly StandardSchemaV1.Issue[],
  input: unknown,
  schema: unknown,
  prefix: readonly Segment[] = [],
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    const rel = segments(issue.path);
    const path = formatPath([...prefix, ...rel]);
    const value = valueAt(input, rel);
    const x = extras(issue);
    switch (x.code) {
      case "invalid_type":
        out.push({
          path,
          message:
            value === undefined
              ? `missing (expected ${x.expected})`
              : `expected ${x.expected}, got ${typeName(value)}`,
        });
        break;
      case "unrecognized_keys": {
        const known = knownKeysAt(schema, rel);
        for (const key of x.keys ?? []) {
          out.push({
            path: formatPath([...prefix, ...rel, key]),
            message: unknownNameMessage("key", key, known),
          });
        }
        break;
      }
      case "invalid_value":
        out.push({
          path,
          message: `expected one of ${(x.values ?? []).map((v) => JSON.stringify(v)).join(", ")}, got ${JSON.stringify(value)}`,
        });
        break;
      case "too_small":
      case "too_big":
        out.push({ path, message: `${issue.message} (got ${JSON.stringify(value)})` });
        break;
      case "invalid_format":
        out.push({ path, message: `${issue.message}, got ${JSON.stringify(value)}` });
        break;
      case "invalid_union": {
        // Report the branch that matches the value's shape (an object for `lora: {...} | false`): its
        // issues are below the union's own path, where the other branches fail at the path itself.
        const branches = (x.errors ?? []).filter((b) =>
          b.some((i) => segments(i.path).length > 0 || extras(i).code === "unrecognized_keys"),
        );
        const best = branches.sort((a, b) => a.length - b.length)[0];
        if (best) {
          const nested = best.map((i) => ({ ...i, path: [...rel, ...segments(i.path)] }));
          out.push(...schemaIssues(nested, input, schema, prefix));
        } else out.push({ path, message: `${issue.message}, got ${typeName(value)}` });
        break;
      }
      default:
        out.push({ path, message: issue.message });
    }
  }
  return out;
}

/** Validate `input` with any Standard Schema; issues are returned, never thrown. */
export async function validateWith<Output>(
  schema: StandardSchemaV1<unknown, Output>,
  input: unknown,
  prefix: readonly Segment[] = [],
): Promise<{ value: Output; issues?: undefined } | { value?: undefined; issues: ConfigIssue[] }> {
  const result = await schema["~standard"].validate(input);
  if (result.issues) return { issues: schemaIssues(result.issues, input, schema, prefix) };
  return { value: result.value };
}

/** One error that lists every problem; its key is the first problem's path. */
export function configError(
  file: string,
  issues: ConfigIssue[],
  what = "invalid pipeline config",
): HippoError {
  const first = issues[0];
  const lines = issues.map((i) => `  ${i.path}: ${i.message}`).join("\n");
  return new HippoError(
    "INVALID_CONFIG",
    issues.length === 1 && first
      ? `${what}: ${first.path}: ${first.message}`
      : `${what} (${issues.length} problems):\n${lines}`,
    { file, key: first?.path },
  );
}
