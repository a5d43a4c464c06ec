/**
 * Run by resolve.test.ts as a separate process that the test kills with SIGKILL half-way through a download:
 * `node --import tsx download-child.ts <endpoint> <cacheDir> <repo>`.
 */
import { silentProgress } from "@hippocrates/core";
import { resolvePretrained } from "../src/index.js";

const [endpoint, cacheDir, repo] = process.argv.slice(2) as [string, string, string];
await resolvePretrained(repo, "model", {
  endpoint,
  cacheDir,
  token: false,
  offline: false,
  progress: silentProgress,
});
process.stdout.write("finished\n");
