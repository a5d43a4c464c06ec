/**
 * The TypeScript examples of the READMEs and docs/ type-check against the packages' real types, so a renamed
 * function or option breaks this test instead of a reader's copy. Each ```ts block becomes a module (with the
 * declarations its `<!-- typecheck: ... -->` comment gives for the names it assumes, such as `model`) in a
 * temporary project whose node_modules link to the workspace's packages, and `tsc --noEmit` checks them all
 * with the repository's strict settings. A block whose comment says `typecheck: skip, <why>` is left out and
 * counted. An error names the page and line.
 */
import { spawnSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { type DocSnippet, docPages, extractSnippets } from "./doc-commands.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
let work = "";
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Third-party packages the snippets import, found where a workspace package has them. */
const THIRD_PARTY: [string, string][] = [
  ["zod", "examples"],
  ["@tensorflow/tfjs-core", "packages/model"],
];

describe("the docs' TypeScript snippets", () => {
  it("type-check against the packages' types", { timeout: 600_000 }, () => {
    const snippets: DocSnippet[] = docPages(ROOT).flatMap((f) =>
      extractSnippets(readFileSync(join(ROOT, f), "utf8"), f),
    );
    const checked = snippets.filter((s) => s.skip === undefined);
    const skipped = snippets.filter((s) => s.skip !== undefined);
    expect(checked.length).toBeGreaterThan(10);

    work = mkdtempSync(join(tmpdir(), "hippo-snippets-"));
    const modules = join(work, "node_modules");
    mkdirSync(join(modules, "@hippocrates"), { recursive: true });
    mkdirSync(join(modules, "@tensorflow"), { recursive: true });
    for (const pkg of [
      "backend",
      "cli",
      "core",
      "data",
      "eval",
      "hub",
      "model",
      "safetensors",
      "tokenizer",
      "train",
    ])
      symlinkSync(join(ROOT, "packages", pkg), join(modules, "@hippocrates", pkg));
    for (const [name, from] of THIRD_PARTY)
      symlinkSync(realpathSync(join(ROOT, from, "node_modules", name)), join(modules, name));
    symlinkSync(join(ROOT, "node_modules", "@types"), join(modules, "@types"));
    writeFileSync(join(work, "package.json"), JSON.stringify({ type: "module", private: true }));
    writeFileSync(
      join(work, "tsconfig.json"),
      JSON.stringify({
        extends: join(ROOT, "tsconfig.base.json"),
        compilerOptions: { noEmit: true, declaration: false, sourceMap: false },
        include: ["snippets/*.ts"],
      }),
    );
    mkdirSync(join(work, "snippets"));
    const where = new Map<string, { snippet: DocSnippet; offset: number }>();
    checked.forEach((s, i) => {
      const name = `s${String(i).padStart(2, "0")}-${s.file.replace(/[^A-Za-z0-9]+/g, "-")}-${s.line}.ts`;
      // The context first, then the snippet; `export {}` makes a snippet without imports a module of its own.
      const context = s.context ? `${s.context}\n` : "";
      writeFileSync(join(work, "snippets", name), `${context}${s.code}\nexport {};\n`);
      where.set(name, { snippet: s, offset: context.split("\n").length - 1 });
    });

    const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
    const r = spawnSync(process.execPath, [tsc, "-p", work, "--pretty", "false"], {
      cwd: work,
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    });
    const errors = `${r.stdout}${r.stderr}`
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => {
        const m = /^snippets\/([^()]+)\((\d+),(\d+)\): (.*)$/.exec(l);
        const w = m ? where.get(m[1] as string) : undefined;
        if (!m || !w) return l;
        const line = Number(m[2]) - w.offset;
        return line >= 1
          ? `${w.snippet.file}:${w.snippet.line + line - 1}: ${m[4]}`
          : `${w.snippet.file}:${w.snippet.line} (its typecheck comment): ${m[4]}`;
      });
    console.log(
      `docs snippets: ${checked.length} type-checked, ${skipped.length} skipped${skipped.length ? ` (${skipped.map((s) => `${s.file}:${s.line}: ${s.skip}`).join("; ")})` : ""}`,
    );
    expect(errors, errors.join("\n")).toEqual([]);
    expect(r.status).toBe(0);
  });
});
