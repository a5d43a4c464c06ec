/**
 * The request queue. The model runs one batch at a time; while it runs, new requests wait, and the next batch
 * takes every waiting request that can share a call (same kind, same sampling settings) up to `maxBatch`.
 * So under load, concurrent requests are batched together; alone, a request runs at once.
 *
 * Work belongs to the HTTP request that asked for it (a `RequestScope`): when its client goes away, its queued
 * jobs leave the queue at once, and a running batch whose clients have all gone is aborted at its next token
 * (the model checks the signal between decoding steps). A batch shared with clients still waiting runs on:
 * their rows share its forward passes, and restarting them would let anyone who connects and leaves delay
 * everyone else.
 */
import { type GenerationOptions, type GenerationResult, HippoError } from "@hippocrates/core";
import type { TokenLogprobs } from "@hippocrates/model";
import type { ServeModel } from "./types.js";

export type SamplingOptions = Omit<GenerationOptions, "onToken">;

interface RunningBatch {
  /** Jobs whose client is still there. */
  live: number;
  controller: AbortController;
}

interface JobBase<R> {
  key: string;
  scope: RequestScope;
  batch: RunningBatch | undefined;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

interface GenerateJob extends JobBase<GenerationResult> {
  kind: "generate";
  prompt: number[];
  options: SamplingOptions;
  onToken: ((tokenId: number) => void) | undefined;
}

interface ScoreJob extends JobBase<TokenLogprobs> {
  kind: "score";
  ids: number[];
  topK: number;
}

type Job = GenerateJob | ScoreJob;

/** One HTTP request's jobs, cancelled together when its client goes away; what was cancelled, for the log. */
export interface RequestScope {
  readonly signal: AbortSignal;
  readonly jobs: Set<Job>;
  cancelledQueued: number;
  cancelledRunning: number;
  /** Stop watching the signal (the request is over). */
  close(): void;
}

export interface QueueStats {
  batches: number;
  requests: number;
  maxBatchSeen: number;
  /** Jobs dropped from the queue, or given up while running, because their client went away. */
  cancelled: number;
}

const gone = () => new HippoError("ABORTED", "the client went away");

export class BatchQueue {
  private readonly pending: Job[] = [];
  private current: Job[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  /** Moving average of a batch's wall time (ms), for `Retry-After`. */
  private batchMs = 0;
  readonly stats: QueueStats = { batches: 0, requests: 0, maxBatchSeen: 0, cancelled: 0 };

  constructor(
    private readonly model: ServeModel,
    private readonly maxBatch = 8,
  ) {
    // A batch of 0 would never empty the queue: drain() would spin and starve the event loop.
    if (!Number.isInteger(maxBatch) || maxBatch < 1)
      throw new HippoError("INVALID_ARGUMENT", "maxBatch must be a positive integer", {
        key: "maxBatch",
        got: String(maxBatch),
      });
  }

  /** Jobs waiting plus the batch running (as 1). */
  get size(): number {
    return this.pending.length + (this.running ? 1 : 0);
  }

  /** Seconds until `jobs` more jobs could have run, from recent batch times (1 to 60). */
  retryAfterSeconds(jobs: number): number {
    const batches = Math.ceil((this.pending.length + this.current.length + jobs) / this.maxBatch);
    return Math.min(60, Math.max(1, Math.ceil((batches * this.batchMs) / 1000)));
  }

  /** The jobs of one request: all of them are cancelled when `signal` aborts. */
  scope(signal: AbortSignal): RequestScope {
    const jobs = new Set<Job>();
    const onAbort = () => {
      for (const job of [...jobs]) this.cancel(job);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    return {
      signal,
      jobs,
      cancelledQueued: 0,
      cancelledRunning: 0,
      close: () => signal.removeEventListener("abort", onAbort),
    };
  }

  generate(
    scope: RequestScope,
    prompt: number[],
    options: SamplingOptions,
    onToken?: (tokenId: number) => void,
  ): Promise<GenerationResult> {
    return new Promise((resolve, reject) => {
      this.push({
        kind: "generate",
        key: `g${JSON.stringify(options)}`,
        scope,
        batch: undefined,
        prompt,
        options,
        onToken,
        resolve,
        reject,
      });
    });
  }

  score(scope: RequestScope, ids: number[], topK: number): Promise<TokenLogprobs> {
    return new Promise((resolve, reject) => {
      this.push({ kind: "score", key: `s${topK}`, scope, batch: undefined, ids, topK, resolve, reject });
    });
  }

  /** Resolves when nothing is queued or running (graceful shutdown waits on this). */
  idle(): Promise<void> {
    if (!this.running && this.pending.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private push(job: Job): void {
    if (job.scope.signal.aborted) {
      job.scope.cancelledQueued += 1;
      this.stats.cancelled += 1;
      job.reject(gone());
      return;
    }
    job.scope.jobs.add(job);
    this.pending.push(job);
    // Let requests that arrive in the same tick join the batch.
    if (!this.running) setImmediate(() => void this.drain());
  }

  private settle<R>(job: JobBase<R>, outcome: { value: R } | { error: unknown }): void {
    job.scope.jobs.delete(job as Job);
    if ("value" in outcome) job.resolve(outcome.value);
    else job.reject(outcome.error);
  }

  /** The job's client went away: leave the queue, or give up the job's row of the running batch. */
  private cancel(job: Job): void {
    job.scope.jobs.delete(job);
    this.stats.cancelled += 1;
    const i = this.pending.indexOf(job);
    if (i >= 0) {
      this.pending.splice(i, 1);
      job.scope.cancelledQueued += 1;
      job.reject(gone());
    } else if (job.batch) {
      job.scope.cancelledRunning += 1;
      job.batch.live -= 1;
      if (job.batch.live === 0) job.batch.controller.abort(gone());
    }
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.pending.length > 0) {
        const head = this.pending[0] as Job;
        const batch: Job[] = [];
        for (let i = 0; i < this.pending.length && batch.length < this.maxBatch; ) {
          const job = this.pending[i] as Job;
          if (job.key === head.key) {
            batch.push(job);
            this.pending.splice(i, 1);
          } else i++;
        }
        const running: RunningBatch = { live: batch.length, controller: new AbortController() };
        for (const job of batch) job.batch = running;
        this.current = batch;
        this.stats.batches += 1;
        this.stats.requests += batch.length;
        this.stats.maxBatchSeen = Math.max(this.stats.maxBatchSeen, batch.length);
        const t0 = performance.now();
        if (head.kind === "generate")
          await this.runGenerate(batch as GenerateJob[], running.controller.signal);
        else await this.runScore(batch as ScoreJob[], running.controller.signal);
        const ms = performance.now() - t0;
        this.batchMs = this.batchMs === 0 ? ms : 0.8 * this.batchMs + 0.2 * ms;
        this.current = [];
      }
    } finally {
      this.running = false;
      this.current = [];
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** One model call for the batch; each job gets its row, or every job the call's error. */
  private async runBatch<R>(batch: JobBase<R>[], call: () => Promise<R[]>, short: string): Promise<void> {
    try {
      const results = await call();
      batch.forEach((job, i) => {
        const r = results[i];
        this.settle(job, r ? { value: r } : { error: new Error(short) });
      });
    } catch (e) {
      for (const job of batch) this.settle(job, { error: e });
    }
  }

  private runGenerate(batch: GenerateJob[], signal: AbortSignal): Promise<void> {
    const first = batch[0] as GenerateJob;
    return this.runBatch(
      batch,
      () =>
        this.model.generator.generate(
          batch.map((j) => j.prompt),
          {
            ...first.options,
            signal,
            onToken: (seq, tokenId) => batch[seq]?.onToken?.(tokenId),
          },
        ),
      "model returned fewer results than prompts",
    );
  }

  private runScore(batch: ScoreJob[], signal: AbortSignal): Promise<void> {
    return this.runBatch(
      batch,
      () =>
        this.model.scorer.tokenLogprobs(
          batch.map((j) => j.ids),
          (batch[0] as ScoreJob).topK,
          signal,
        ),
      "scorer returned fewer results than sequences",
    );
  }
}
