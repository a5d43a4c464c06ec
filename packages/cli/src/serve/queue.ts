/**
 * The request queue. The model runs one batch at a time; while it runs, new requests wait, and the next batch
 * takes every waiting request that can share a call (same kind, same sampling settings) up to `maxBatch`.
 * So under load, concurrent requests are batched together; alone, a request runs at once.
 */
import type { GenerationOptions, GenerationResult } from "@hippocrates/core";
import type { ServeModel, TokenLogprobs } from "./types.js";

export type SamplingOptions = Omit<GenerationOptions, "onToken">;

interface GenerateJob {
  kind: "generate";
  key: string;
  prompt: number[];
  options: SamplingOptions;
  onToken: ((tokenId: number) => void) | undefined;
  signal: AbortSignal | undefined;
  resolve: (r: GenerationResult) => void;
  reject: (e: unknown) => void;
}

interface ScoreJob {
  kind: "score";
  key: string;
  ids: number[];
  topK: number;
  resolve: (r: TokenLogprobs) => void;
  reject: (e: unknown) => void;
}

type Job = GenerateJob | ScoreJob;

export interface QueueStats {
  batches: number;
  requests: number;
  maxBatchSeen: number;
}

export class BatchQueue {
  private readonly pending: Job[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  readonly stats: QueueStats = { batches: 0, requests: 0, maxBatchSeen: 0 };

  constructor(
    private readonly model: ServeModel,
    private readonly maxBatch = 8,
  ) {}

  get size(): number {
    return this.pending.length + (this.running ? 1 : 0);
  }

  generate(
    prompt: number[],
    options: SamplingOptions,
    onToken?: (tokenId: number) => void,
    signal?: AbortSignal,
  ): Promise<GenerationResult> {
    return new Promise((resolve, reject) => {
      this.push({
        kind: "generate",
        key: `g${JSON.stringify(options)}`,
        prompt,
        options,
        onToken,
        signal,
        resolve,
        reject,
      });
    });
  }

  score(ids: number[], topK: number): Promise<TokenLogprobs> {
    return new Promise((resolve, reject) => {
      this.push({ kind: "score", key: `s${topK}`, ids, topK, resolve, reject });
    });
  }

  /** Resolves when nothing is queued or running (graceful shutdown waits on this). */
  idle(): Promise<void> {
    if (!this.running && this.pending.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private push(job: Job): void {
    this.pending.push(job);
    // Let requests that arrive in the same tick join the batch.
    if (!this.running) setImmediate(() => void this.drain());
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
        this.stats.batches += 1;
        this.stats.requests += batch.length;
        this.stats.maxBatchSeen = Math.max(this.stats.maxBatchSeen, batch.length);
        if (head.kind === "generate") await this.runGenerate(batch as GenerateJob[]);
        else await this.runScore(batch as ScoreJob[]);
      }
    } finally {
      this.running = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async runGenerate(batch: GenerateJob[]): Promise<void> {
    const first = batch[0] as GenerateJob;
    // The batch stops early only when every client has gone away.
    const controller = new AbortController();
    let live = batch.length;
    for (const job of batch) {
      job.signal?.addEventListener("abort", () => {
        live -= 1;
        if (live === 0) controller.abort();
      });
    }
    try {
      const results = await this.model.generator.generate(
        batch.map((j) => j.prompt),
        {
          ...first.options,
          signal: controller.signal,
          onToken: (seq, tokenId) => batch[seq]?.onToken?.(tokenId),
        },
      );
      batch.forEach((job, i) => {
        const r = results[i];
        if (r) job.resolve(r);
        else job.reject(new Error("model returned fewer results than prompts"));
      });
    } catch (e) {
      for (const job of batch) job.reject(e);
    }
  }

  private async runScore(batch: ScoreJob[]): Promise<void> {
    try {
      const results = await this.model.scorer.tokenLogprobs(
        batch.map((j) => j.ids),
        (batch[0] as ScoreJob).topK,
      );
      batch.forEach((job, i) => {
        const r = results[i];
        if (r) job.resolve(r);
        else job.reject(new Error("scorer returned fewer results than sequences"));
      });
    } catch (e) {
      for (const job of batch) job.reject(e);
    }
  }
}
