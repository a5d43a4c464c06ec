/**
 * `hippo serve` as a user starts it: every option checked before the model loads (a bad flag is exit 2 with
 * a message naming it), no non-loopback bind without a key, and the key read from HIPPO_API_KEY by the real
 * command (the bin shim in a child process, on a miniature model).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { main } from "../src/main.js";
import { prepareMiniature } from "../src/miniature/prepare.js";
import { HIPPO, makeTempDir, removeTempDir } from "./helpers/cli.js";
import { raw } from "./helpers/http.js";

// A folder that does not exist: a refusal must come before the model is looked for.
const NO_MODEL = join(tmpdir(), "hippo-serve-cli-no-such-model");

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir("serve-cli");
});
afterAll(() => removeTempDir(dir));
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

/** Run `hippo serve ...args` in this process; the exit code and what went to stderr. */
async function serve(...args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = "";
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  const code = await main(["node", "hippo", "serve", ...args]);
  vi.restoreAllMocks();
  return { code, stderr };
}

describe("hippo serve options", () => {
  it("refuses --max-batch 0 and other nonsense before loading the model, naming the flag", async () => {
    vi.stubEnv("HIPPO_API_KEY", undefined);
    const cases: [string[], string][] = [
      [["--max-batch", "0"], "--max-batch"],
      [["--max-body", "10"], "--max-body"],
      [["--max-tokens", "0"], "--max-tokens"],
      [["--max-choices", "0"], "--max-choices"],
      [["--max-choices", "16", "--max-queue", "8"], "--max-queue"],
      [["--port", "70000"], "--port"],
      [["--max-batch", "-3"], "--max-batch"],
    ];
    for (const [flags, name] of cases) {
      const r = await serve(NO_MODEL, ...flags);
      expect(r.code, flags.join(" ")).toBe(2);
      expect(r.stderr, flags.join(" ")).toContain(name);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it("refuses a non-loopback --host without --api-key or HIPPO_API_KEY, and an empty key", async () => {
    vi.stubEnv("HIPPO_API_KEY", undefined);
    const open = await serve(NO_MODEL, "--host", "0.0.0.0");
    expect(open.code).toBe(2);
    expect(open.stderr).toMatch(/--api-key.*HIPPO_API_KEY/);
    vi.stubEnv("HIPPO_API_KEY", "");
    const empty = await serve(NO_MODEL, "--host", "127.0.0.1");
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain("--api-key");
  });

  it("serves with the key from HIPPO_API_KEY: 401 without it, 200 with it, clean exit on SIGTERM", async () => {
    await prepareMiniature(dir, { diseases: 6 });
    const key = "sk-from-env-0123456789";
    const child: ChildProcess = spawn(
      process.execPath,
      [HIPPO, "serve", join(dir, "base-model"), "--tokenizer", join(dir, "tokenizer"), "--port", "0"],
      {
        env: { ...process.env, HIPPO_API_KEY: key, HIPPO_THREADS: "1" },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let stderr = "";
    const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr?.on("data", (d: Buffer) => {
        stderr += d;
        const m = /on http:\/\/127\.0\.0\.1:(\d+)\/v1/.exec(stderr);
        if (m) resolve(Number(m[1]));
      });
      void exited.then(() => reject(new Error(`hippo serve exited: ${stderr}`)));
    });
    try {
      expect((await raw(port, { method: "GET", path: "/v1/models" })).status).toBe(401);
      const ok = await raw(port, {
        method: "GET",
        path: "/v1/models",
        headers: { authorization: `Bearer ${key}` },
      });
      expect(ok.status).toBe(200);
      expect(stderr).toContain("API key required");
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
  });
});
