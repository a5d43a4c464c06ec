import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { createProgram } from "../src/cli.js";
import { HIPPO } from "./helpers/cli.js";

/** Every command path of the program, e.g. ["train", "sft"]. */
function commandPaths(): string[][] {
  const out: string[][] = [];
  const walk = (cmd: ReturnType<typeof createProgram>, prefix: string[]) => {
    for (const sub of cmd.commands) {
      const path = [...prefix, sub.name()];
      out.push(path);
      walk(sub as ReturnType<typeof createProgram>, path);
    }
  };
  walk(createProgram(), []);
  return out;
}

describe("hippo --help", () => {
  const paths = commandPaths();

  it("has the documented subcommands", () => {
    const names = paths.map((p) => p.join(" "));
    for (const n of [
      "run",
      "report",
      "miniature",
      "serve",
      "train cpt",
      "train sft",
      "train dpo",
      "eval",
      "eval merge",
      "init",
      "merge",
      "generate",
      "data cpt",
      "data sft",
      "data preference",
    ]) {
      expect(names).toContain(n);
    }
  });

  it.each(paths.map((p) => [p.join(" "), p]))("`hippo %s --help` prints usage and exits 0", (_name, path) => {
    const program = createProgram();
    let text = "";
    const capture = (c: ReturnType<typeof createProgram>): void => {
      c.configureOutput({ writeOut: (s) => (text += s), writeErr: (s) => (text += s) });
      for (const sub of c.commands) capture(sub as ReturnType<typeof createProgram>);
    };
    capture(program);
    // Commander throws (exitOverride) with code "commander.helpDisplayed" after printing help.
    let code: string | undefined;
    try {
      program.parse(["node", "hippo", ...(path as string[]), "--help"]);
    } catch (e) {
      code = (e as { code?: string }).code;
    }
    expect(code).toBe("commander.helpDisplayed");
    expect(text).toContain(`Usage: hippo ${(path as string[]).join(" ")}`);
  });

  it("the bin shim runs under plain node (top-level help, exit 0)", () => {
    const r = spawnSync(process.execPath, [HIPPO, "--help"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("Usage: hippo");
    expect(r.stdout).toContain("miniature");
  });
});
