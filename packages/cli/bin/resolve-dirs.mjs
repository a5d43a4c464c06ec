// Node ESM resolve hook for tfjs-core's dist files, which use extensionless and directory imports
// (`import './gradients'`) that only bundlers resolve. @hippocrates/train imports
// `@tensorflow/tfjs-core/dist/register_all_gradients.js` to register gradients, and under plain Node that
// import fails with ERR_UNSUPPORTED_DIR_IMPORT / ERR_MODULE_NOT_FOUND. For specifiers inside
// @tensorflow packages only, retry as `<specifier>.js` and `<specifier>/index.js`.
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (e) {
    const fromTf = typeof context.parentURL === "string" && context.parentURL.includes("/@tensorflow/");
    const relative = specifier.startsWith("./") || specifier.startsWith("../");
    if (
      !fromTf ||
      !relative ||
      (e?.code !== "ERR_UNSUPPORTED_DIR_IMPORT" && e?.code !== "ERR_MODULE_NOT_FOUND")
    )
      throw e;
    for (const candidate of [`${specifier}.js`, `${specifier}/index.js`]) {
      try {
        return await nextResolve(candidate, context);
      } catch {
        // try the next form
      }
    }
    throw e;
  }
}
