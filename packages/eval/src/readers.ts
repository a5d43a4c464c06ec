/**
 * Readers for the benchmark files as published, beside core's JSONL and strict text readers: JSON objects
 * whose key order matters, and RFC 4180 CSV. Every bad record is a HippoError naming the file and the line or row.
 */
import { HippoError, parseJsonSafe } from "@hippocrates/core";

/**
 * The entries of a top-level JSON object in the order the file writes them. `JSON.parse` cannot keep that
 * order when keys look like array indices (PubMedQA's PMIDs: JS objects list such keys numerically), while
 * Python's `json.load` keeps file order, and the harness iterates in file order.
 */
export function orderedJsonEntries(text: string, file?: string): [string, unknown][] {
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n && " \t\r\n".includes(text[i] as string)) i++;
  };
  const fail = (what: string): never => {
    const line = text.slice(0, i).split("\n").length;
    throw new HippoError("INVALID_FORMAT", `invalid JSON object: ${what}`, { file, line });
  };
  // End of a JSON string starting at `start` (a quote); returns the index after the closing quote.
  const stringEnd = (start: number): number => {
    let j = start + 1;
    while (j < n) {
      const c = text[j];
      if (c === "\\") j += 2;
      else if (c === '"') return j + 1;
      else j++;
    }
    i = j;
    return fail("unterminated string");
  };
  ws();
  if (text[i] !== "{") fail("expected '{' at the top level");
  i++;
  const entries: [string, unknown][] = [];
  ws();
  if (text[i] === "}") return entries;
  for (;;) {
    ws();
    if (text[i] !== '"') fail("expected a key");
    const keyEnd = stringEnd(i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = keyEnd;
    ws();
    if (text[i] !== ":") fail("expected ':'");
    i++;
    ws();
    const start = i;
    // Skip one value: strings are skipped whole, brackets are counted.
    let depth = 0;
    while (i < n) {
      const c = text[i] as string;
      if (c === '"') {
        i = stringEnd(i);
        if (depth === 0) break;
        continue;
      }
      if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") {
        if (depth === 0) break;
        depth--;
        if (depth === 0) {
          i++;
          break;
        }
      } else if (depth === 0 && ",\n\r\t ".includes(c)) break;
      i++;
    }
    entries.push([key, parseJsonSafe(text.slice(start, i), file)]);
    ws();
    if (text[i] === ",") {
      i++;
      continue;
    }
    if (text[i] === "}") break;
    fail("expected ',' or '}'");
  }
  i++;
  ws();
  if (i < n) fail("trailing characters after the object");
  return entries;
}

/** RFC 4180 CSV: quoted fields may hold commas, doubled quotes and newlines. Returns rows of fields. */
export function parseCsv(text: string, file?: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let i = 0;
  let quoted = false;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      if (c === "\n") line++;
      field += c;
      i++;
      continue;
    }
    if (c === '"') {
      if (field !== "")
        throw new HippoError("INVALID_FORMAT", "quote inside an unquoted CSV field", { file, line });
      quoted = true;
      i++;
    } else if (c === ",") {
      row.push(field);
      field = "";
      i++;
    } else if (c === "\n" || c === "\r") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      line++;
    } else {
      field += c;
      i++;
    }
  }
  if (quoted) throw new HippoError("INVALID_FORMAT", "unterminated quoted CSV field", { file, line });
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}
