#!/usr/bin/env node
/** Entry point of `hippo` (run with tsx: `pnpm exec tsx packages/cli/src/bin.ts --help`). */
import { main } from "./main.js";

process.exitCode = await main(process.argv);
