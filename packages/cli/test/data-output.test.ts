/**
 * `hippo data` never destroys what it did not write: an outDir is replaced only when it is absent, empty or an
 * earlier output of the same command (its manifest.json says so and lists every file); anything else is
 * refused before any work, naming the folder and what is in it. `--overwrite` replaces a foreign folder, but
 * never a regular file, the current folder, or a folder holding the inputs or the config. Each case ran
 * against the old builders, which replaced the whole folder and exited 0.
 */
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectOk, makeTempDir, removeTempDir, runHippo } from "./helpers/cli.js";

let root: string;
beforeAll(async () => {
  root = await makeTempDir("data-out");
});
afterAll(() => removeTempDir(root));

const hippo = (cwd: string, ...args: string[]) => runHippo(cwd, args);

const ALPACA = [
  { instruction: "Which drug treats fever?", input: "", output: "Paracetamol." },
  { instruction: "Which organ makes insulin?", input: "", output: "The pancreas." },
]
  .map((r) => `${JSON.stringify(r)}\n`)
  .join("");

/** A fresh project folder with an Alpaca input and an SFT config writing to `outDir`. */
async function project(name: string, outDir: string, input = "alpaca.jsonl"): Promise<string> {
  const dir = join(root, name);
  await mkdir(join(dir, input, ".."), { recursive: true });
  await writeFile(join(dir, input), ALPACA);
  await writeFile(
    join(dir, "sft.yaml"),
    `sources:\n  - {format: alpaca, path: ${input}}\noutDir: ${JSON.stringify(outDir)}\nseed: 1\n`,
  );
  return dir;
}

/** Every file under `dir` with its content, to show that nothing changed. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true }))
    if (e.isFile()) {
      const p = join(e.parentPath, e.name);
      out[p.slice(dir.length + 1)] = await readFile(p, "utf8");
    }
  return out;
}

describe("hippo data: output folders are never destroyed", () => {
  it("refuses an outDir that holds other files, leaving them untouched, and names the folder and its files", async () => {
    const dir = await project("foreign", "out");
    await mkdir(join(dir, "out"));
    await writeFile(join(dir, "out", "notes.txt"), "my notes");
    const before = await snapshot(dir);
    const r = await hippo(dir, "data", "sft", "sft.yaml");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(join(dir, "out"));
    expect(r.stderr).toContain("notes.txt");
    expect(r.stderr).toContain("--overwrite");
    expect(await snapshot(dir)).toEqual(before);
    // With --overwrite the user asked for it: the folder is replaced by the output.
    const o = await hippo(dir, "data", "sft", "sft.yaml", "--overwrite");
    expectOk(o);
    expect((await readdir(join(dir, "out"))).sort()).toEqual(["instructions.jsonl", "manifest.json"]);
  });

  it("refuses outDir: . (the folder holding the config and the input), also with --overwrite", async () => {
    const dir = await project("dot", ".");
    const before = await snapshot(dir);
    for (const extra of [[], ["--overwrite"]]) {
      const r = await hippo(dir, "data", "sft", "sft.yaml", ...extra);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/refusing to replace/);
      expect(await snapshot(dir)).toEqual(before);
    }
  });

  it("refuses, also with --overwrite, an outDir that holds the input", async () => {
    const dir = await project("holds-input", "data", "data/alpaca.jsonl");
    await writeFile(join(dir, "data", "other.txt"), "x");
    const before = await snapshot(dir);
    const r = await hippo(dir, "data", "sft", "sft.yaml", "--overwrite");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("an input of this build");
    expect(r.stderr).toContain(join(dir, "data", "alpaca.jsonl"));
    expect(await snapshot(dir)).toEqual(before);
  });

  it("never replaces a regular file with a folder, also with --overwrite", async () => {
    const dir = await project("file", "out.jsonl");
    await writeFile(join(dir, "out.jsonl"), "precious\n");
    for (const extra of [[], ["--overwrite"]]) {
      const r = await hippo(dir, "data", "sft", "sft.yaml", ...extra);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/not a folder, and an output folder never replaces it/);
      expect(await readFile(join(dir, "out.jsonl"), "utf8")).toBe("precious\n");
    }
  });

  it("replaces its own earlier output, but not once someone has put another file in it", async () => {
    const dir = await project("rerun", "out");
    const first = await hippo(dir, "data", "sft", "sft.yaml");
    expectOk(first);
    const manifest = JSON.parse(await readFile(join(dir, "out", "manifest.json"), "utf8"));
    expect(manifest.builder).toBe("sft");
    expect(Object.keys(manifest.outputs)).toEqual(["instructions.jsonl"]);
    const again = await hippo(dir, "data", "sft", "sft.yaml");
    expectOk(again);
    await writeFile(join(dir, "out", "analysis.ipynb"), "{}");
    const r = await hippo(dir, "data", "sft", "sft.yaml");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("analysis.ipynb");
    expect(await readFile(join(dir, "out", "analysis.ipynb"), "utf8")).toBe("{}");
    // Another builder's output is not this command's own: cpt output is refused by sft.
    const cptOut = join(dir, "cpt-out");
    await mkdir(cptOut);
    await writeFile(
      join(cptOut, "manifest.json"),
      JSON.stringify({ builder: "cpt", outputs: { "blocks.jsonl": {} } }),
    );
    await writeFile(join(cptOut, "blocks.jsonl"), "");
    await writeFile(
      join(dir, "sft2.yaml"),
      "sources:\n  - {format: alpaca, path: alpaca.jsonl}\noutDir: cpt-out\n",
    );
    const c = await hippo(dir, "data", "sft", "sft2.yaml");
    expect(c.status).toBe(2);
    expect(c.stderr).toContain("blocks.jsonl");
    expect((await readdir(cptOut)).sort()).toEqual(["blocks.jsonl", "manifest.json"]);
  });

  it("preference refuses a foreign outDir before sending any judge request", async () => {
    const dir = join(root, "pref");
    await mkdir(join(dir, "out"), { recursive: true });
    await writeFile(join(dir, "out", "keep.txt"), "x");
    await writeFile(
      join(dir, "q.jsonl"),
      `${JSON.stringify({ id: "1", input: "Is a fever of 38.5 C dangerous?", answers: { a: "No.", b: "See a doctor." } })}\n`,
    );
    // Port 9 on loopback: nothing listens there, so a request would fail with a network error instead.
    await writeFile(
      join(dir, "pref.yaml"),
      "input: q.jsonl\noutDir: out\nmodel: gpt-4\njudge: {baseUrl: 'http://127.0.0.1:9/v1', maxRetries: 0}\n",
    );
    const r = await hippo(dir, "data", "preference", "pref.yaml");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("keep.txt");
    expect(r.stderr).toMatch(/refusing to replace/);
    expect(await readdir(join(dir, "out"))).toEqual(["keep.txt"]);
  });
});
