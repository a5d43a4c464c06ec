/**
 * Progress reporters that act at a known step, for tests that stop a run there (abort, or freeze for a kill)
 * instead of racing a timer against the training. No backend import: the cpu (MLP) and wasm (Llama) tests and
 * the kill-and-resume fixture all use it.
 */
import type { ProgressReporter } from "@hippocrates/core";

/** Calls `onTick` with the number of steps done (counting from a resumed run's `initial`) after each step. */
export function onStep(onTick: (done: number) => void): ProgressReporter {
  return {
    start: ({ initial = 0 }) => {
      let done = initial;
      return {
        tick() {
          done += 1;
          onTick(done);
        },
        done() {},
      };
    },
  };
}

/** Aborts `controller` once `steps` steps are done (the loop saves a checkpoint on abort). */
export function abortAfter(steps: number, controller: AbortController): ProgressReporter {
  return onStep((done) => {
    if (done >= steps) controller.abort();
  });
}
