#!/usr/bin/env node
// `hippo` inside the workspace, without a build step: register tsx's ESM loader, then run the TypeScript
// entry point. The published package runs the built dist/bin.js instead (publishConfig.bin); this file is
// not in its tarball.
let register;
try {
  ({ register } = await import("tsx/esm/api"));
} catch (error) {
  if (error?.code !== "ERR_MODULE_NOT_FOUND") throw error;
  process.stderr.write(
    "hippo: the workspace's dependencies are not installed. In the repository root run `npm run setup`\n" +
      "(or `node scripts/setup.mjs`), then this command again; `npm run hippo -- <args>` does both.\n",
  );
  process.exit(1);
}
register();
await import("../src/bin.ts");
