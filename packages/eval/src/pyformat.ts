/**
 * Python's text forms of values, for files that must read as lm-evaluation-harness writes them:
 * - `pyFloatRepr`: `repr(float)` (shortest round-trip digits, as JS, but Python's layout: `-3.0`, `1e-05`,
 *   `1.5e+16`; the harness's `sanitize_list` writes every log-likelihood of a samples file this way);
 * - `pyStr`: `str()` of the scalars a response holds (floats, `True`/`False`);
 * - `pyJsonDumps`: `json.dumps(value, indent=2, ensure_ascii=False)` (its `doc_hash` is the SHA-256 of this
 *   text of the document);
 * - `pyIsoDateId`: `datetime.now().isoformat().replace(":", "-")`, the date in result file names;
 * - `sanitizeModelName`: `lm_eval.utils.sanitize_model_name`.
 * JS numbers do not say whether a value was an int or a float in Python: integers print as ints in
 * `pyJsonDumps` (a float like `1.0` read from a source file comes out as `1`).
 */

/** Python `repr(x)` for a float. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (x === Number.POSITIVE_INFINITY) return "inf";
  if (x === Number.NEGATIVE_INFINITY) return "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  // toExponential() without an argument gives the shortest digits that round-trip, as Python's repr does.
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(x.toExponential());
  if (!m) throw new Error(`unexpected number format ${x}`);
  const sign = m[1] as string;
  const digits = (m[2] as string) + (m[3] ?? "");
  const exp = Number(m[4]);
  // float_repr_style "short": scientific when exp < -4 or exp >= 16 (Python/pystrtod.c, format code 'r').
  if (exp < -4 || exp >= 16) {
    const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp);
    return `${sign}${mantissa}e${exp < 0 ? "-" : "+"}${e < 10 ? `0${e}` : e}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac === "" ? "0" : frac}`;
}

/** Python `str()` of a response scalar: floats as `repr`, booleans as `True`/`False`. */
export function pyStr(v: number | boolean | string): string {
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") return pyFloatRepr(v);
  return v;
}

function dumpNumber(x: number): string {
  if (Number.isInteger(x) && !Object.is(x, -0)) return String(x);
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "Infinity" : "-Infinity";
  return pyFloatRepr(x);
}

/**
 * `json.dumps(value, indent=2, ensure_ascii=False)`. Its layout equals `JSON.stringify(value, null, 2)` (same
 * separators with an indent, same escapes for well-formed strings) apart from numbers, written here as
 * Python writes them.
 */
export function pyJsonDumps(value: unknown, indent = 2): string {
  const pad = (depth: number) => " ".repeat(indent * depth);
  const walk = (v: unknown, depth: number): string => {
    if (v === null || v === undefined) return "null";
    if (typeof v === "boolean") return v ? "true" : "false";
    if (typeof v === "number") return dumpNumber(v);
    if (typeof v === "string") return JSON.stringify(v);
    if (Array.isArray(v)) {
      if (v.length === 0) return "[]";
      return `[\n${v.map((x) => pad(depth + 1) + walk(x, depth + 1)).join(",\n")}\n${pad(depth)}]`;
    }
    if (typeof v === "object") {
      const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
      if (entries.length === 0) return "{}";
      return `{\n${entries.map(([k, x]) => `${pad(depth + 1)}${JSON.stringify(k)}: ${walk(x, depth + 1)}`).join(",\n")}\n${pad(depth)}}`;
    }
    return JSON.stringify(String(v));
  };
  return walk(value, 0);
}

/** `datetime.fromtimestamp(ms / 1000).isoformat().replace(":", "-")` in local time (no zone, as Python). */
export function pyIsoDateId(epochMs: number): string {
  const d = new Date(epochMs);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const micro = Math.round((epochMs - Math.floor(epochMs / 1000) * 1000) * 1000);
  const base = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}-${p(d.getMinutes())}-${p(d.getSeconds())}`;
  // isoformat() leaves the fraction out when the microseconds are 0.
  return micro === 0 ? base : `${base}.${p(micro, 6)}`;
}

/** `lm_eval.utils.sanitize_model_name`: runs of `"<>:/|\?*[]` become `__`. */
export function sanitizeModelName(name: string): string {
  return name.replace(/["<>:/|\\?*[\]]+/g, "__");
}
