#!/usr/bin/env node
// `hippo` without a build step: register tsx's ESM loader and the tfjs-core resolve fix, then run the
// TypeScript entry point.
import { register as registerHook } from "node:module";
import { register } from "tsx/esm/api";

registerHook("./resolve-dirs.mjs", import.meta.url);
register();
await import("../src/bin.ts");
