#!/usr/bin/env node
/** Entry point of `hippo` (run with tsx: `pnpm exec tsx packages/cli/src/bin.ts --help`). */
import { register } from "node:module";
import { main } from "./main.js";

// tfjs-core's ESM files use directory imports that plain Node rejects (see bin/resolve-dirs.mjs); the hook
// applies to the packages this process imports later (train, model, eval are loaded on demand).
register("../bin/resolve-dirs.mjs", import.meta.url);
process.exitCode = await main(process.argv);
