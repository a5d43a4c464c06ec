"""The training steps of bench/train.ts done the way the Python tools do them by default, in PyTorch: a plain
Llama (RMSNorm, RoPE, GQA attention, SwiGLU MLP, tied head) of the given shape with PEFT-style LoRA, fp32,
2 threads, AdamW, clipping 1.0, no gradient checkpointing (HF Trainer's default).

Modes (the same token ids as the tfjs side, read from the JSON file bench/train.ts writes):
- "lm": HF Trainer + DataCollatorForSeq2Seq / run_clm: each micro-batch right-padded to its longest sequence,
  the attention mask hiding padding, full logits [B, T, vocab], cross-entropy on the labels (-100 ignored),
  shifted as ForCausalLMLoss. SFT (prompt labels -100) and CPT (packed blocks, group_texts: causal mask over
  the whole block) both go through it.
- "dpo": TRL's DPOTrainer default: concatenated_forward over [prompt + chosen..., prompt + rejected...] padded
  to the longest of the 2n sequences, full logits, summed log-probs of the response tokens, sigmoid loss with
  beta 0.1 against precomputed reference log-probs (precompute_ref_log_probs).

Usage: python3 torch_train.py input.json  -> one JSON line last: median step seconds, work counts, peak RSS.
"""
import json
import math
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("torch is not installed (apt-get install python3-torch libopenblas0-openmp)")
    sys.exit(3)

# The shared Llama parts and machine facts of the PyTorch benches live beside the model package's benches.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "model", "bench"))
from torch_llama import gemm_gflops, peak_rss_mib, rms_norm, rope_tables, rotate_half  # noqa: E402

torch.set_num_threads(2)
torch.manual_seed(0)

job = json.load(open(sys.argv[1]))
C = job["config"]
E, I, V, L = C["hidden"], C["intermediate"], C["vocab"], C["layers"]
NH, NKV = C["heads"], C["kv_heads"]
D = E // NH
LORA = job["lora"]


class LoraLinear(nn.Module):
    def __init__(self, i, o, name):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(o, i) * 0.02, requires_grad=False)
        self.r = LORA["r"] if name in LORA["targets"] else 0
        if self.r:
            self.lora_A = nn.Parameter(torch.empty(self.r, i).uniform_(-1 / math.sqrt(i), 1 / math.sqrt(i)))
            self.lora_B = nn.Parameter(torch.randn(o, self.r) * 0.01)
            self.scaling = LORA["alpha"] / self.r

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.r:
            y = y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling
        return y


class RMSNorm(nn.Module):
    def __init__(self, n, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n), requires_grad=False)
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = RMSNorm(E), RMSNorm(E)
        self.q, self.k = LoraLinear(E, NH * D, "q_proj"), LoraLinear(E, NKV * D, "k_proj")
        self.v, self.o = LoraLinear(E, NKV * D, "v_proj"), LoraLinear(NH * D, E, "o_proj")
        self.gate, self.up = LoraLinear(E, I, "gate_proj"), LoraLinear(E, I, "up_proj")
        self.down = LoraLinear(I, E, "down_proj")

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = self.n1(x)
        q = self.q(h).view(b, t, NH, D).transpose(1, 2)
        k = self.k(h).view(b, t, NKV, D).transpose(1, 2)
        v = self.v(h).view(b, t, NKV, D).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(NH // NKV, 1)
        v = v.repeat_interleave(NH // NKV, 1)
        a = (q @ k.transpose(-1, -2)) / math.sqrt(D) + mask
        ctx = (a.softmax(-1) @ v).transpose(1, 2).reshape(b, t, E)
        x = x + self.o(ctx)
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(V, E) * 0.02, requires_grad=False)
        self.layers = nn.ModuleList([Layer() for _ in range(L)])
        self.norm = RMSNorm(E)

    def forward(self, ids, attention_mask):
        T = ids.shape[1]
        cos, sin = rope_tables(T, D)
        causal = torch.full((T, T), float("-inf")).triu(1)
        # HF's 4-D mask: causal, plus padded keys hidden (a large negative, as _prepare_4d_causal_attention_mask)
        pad = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        mask = causal[None, None] + pad
        x = F.embedding(ids, self.embed)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return F.linear(self.norm(x), self.embed)  # tied head: full logits [B, T, V]


def pad(seqs, value):
    T = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (T - len(s)) for s in seqs]), torch.tensor(
        [[1] * len(s) + [0] * (T - len(s)) for s in seqs]
    )


def lm_batch(items):
    ids, mask = pad([it["input_ids"] for it in items], 0)
    labels, _ = pad([it["labels"] for it in items], -100)
    return ids, mask, labels


def lm_loss(model, batch):
    ids, mask, labels = batch
    logits = model(ids, mask)
    # ForCausalLMLoss: shift, mean over labelled tokens
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100), ids.numel()


def dpo_batch(pairs):
    seqs, labels = [], []
    for key in ("chosen", "rejected"):
        for p in pairs:
            seqs.append(p["prompt"] + p[key])
            labels.append([-100] * len(p["prompt"]) + p[key])
    ids, mask = pad(seqs, 0)
    lab, _ = pad(labels, -100)
    ref = torch.tensor([p["ref_chosen"] for p in pairs] + [p["ref_rejected"] for p in pairs])
    return ids, mask, lab, ref


def dpo_loss(model, batch, beta=0.1):
    ids, mask, labels, ref = batch
    logits = model(ids, mask)
    # TRL get_batch_logps: shift, gather the label tokens, sum over the response
    lab = labels[:, 1:].clone()
    keep = lab != -100
    lab[~keep] = 0
    logp = torch.gather(logits[:, :-1].log_softmax(-1), 2, lab[:, :, None]).squeeze(2)
    seq = (logp * keep).sum(-1)
    n = seq.shape[0] // 2
    logits_dpo = (seq[:n] - seq[n:]) - (ref[:n] - ref[n:])
    return -F.logsigmoid(beta * logits_dpo).sum(), ids.numel()


def main():
    model = Llama()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    make, loss_fn = (dpo_batch, dpo_loss) if job["mode"] == "dpo" else (lm_batch, lm_loss)
    batches = [make(b) for b in job["batches"]]
    times, slots = [], []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        loss, n = loss_fn(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if i > 0:  # the first step is the warm-up
            times.append(time.perf_counter() - t0)
            slots.append(n)
    print(
        json.dumps(
            {
                "step_s": statistics.median(times),
                "seconds": sum(times),
                "steps": len(times),
                "token_slots": sum(slots),
                "peak_rss_mib": peak_rss_mib(),
                "threads": torch.get_num_threads(),
                "blas": os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3"),
                "gemm_gflops": gemm_gflops(),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
