import { HippoError } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";

/**
 * `tf.setBackend` resolves false when a backend fails to initialise and only logs a warning; it then leaves
 * tfjs with no backend instance, so the next op (or `tf.ready()`) silently initialises the highest-priority
 * registered backend with its defaults: single-thread wasm, or the ~35x slower cpu backend. Every switch goes
 * through here: a failure restores the backend that ran before and throws an error saying what was tried.
 */
export async function activateTfBackend(tfName: string, tried: string): Promise<void> {
  const engine = tf.engine();
  const previous = tf.getBackend() as string | null;
  const previousReady = previous !== null && engine.registry[previous] !== undefined;
  let ok: boolean;
  try {
    ok = await tf.setBackend(tfName);
    if (ok) await tf.ready();
  } catch (e) {
    await restore(previousReady ? previous : null);
    throw new HippoError("BACKEND_UNAVAILABLE", `${tried}: initialisation failed: ${String(e)}`, {
      cause: e,
    });
  }
  if (!ok || tf.getBackend() !== tfName) {
    const got = `setBackend -> ${ok}, getBackend() = ${JSON.stringify(tf.getBackend())}`;
    const restored = await restore(previousReady ? previous : null);
    throw new HippoError(
      "BACKEND_UNAVAILABLE",
      `${tried}: tf.setBackend(${JSON.stringify(tfName)}) did not take effect${restored ? `; still on ${restored}` : ""}`,
      { expected: `setBackend -> true and getBackend() = ${JSON.stringify(tfName)}`, got },
    );
  }
}

async function restore(previous: string | null): Promise<string | null> {
  if (previous === null) return null;
  try {
    return (await tf.setBackend(previous)) ? previous : null;
  } catch {
    return null;
  }
}
