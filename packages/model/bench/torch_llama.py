"""The parts the PyTorch yardsticks share: bench/torch_forward.py, bench/torch_score.py and
packages/train/bench/torch_train.py (which puts this folder on sys.path).

- A plain Llama forward written out (`transformers` is not installed here), the same arithmetic as
  modeling_llama.py: RMSNorm, RoPE with rotate_half, GQA (repeat_kv order), SwiGLU, lm_head or tied embeddings.
  Random weights, normal(0, 0.02) as HF's init: the numbers measure speed only.
- The machine facts every bench reports: peak RSS, GEMM GFLOP/s, which BLAS torch runs on.

Each script imports torch itself first (and says what to do when it is missing), then this module.
"""

import math
import resource
import time

import torch


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_tables(seq, head_dim, theta=10000.0):
    """cos, sin [seq, head_dim] for positions 0..seq-1 (HF's default rope, no scaling)."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    freqs = torch.outer(torch.arange(seq, dtype=torch.float32), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


class Llama:
    """Inference only (no autograd): `forward(ids)` [B, T] -> logits [B, T, vocab] under a causal mask."""

    def __init__(self, hidden, intermediate, vocab, layers, heads, kv_heads, tied, rope_theta=10000.0, eps=1e-5):
        E, I, V = hidden, intermediate, vocab
        self.H, self.Hkv, self.d = heads, kv_heads, E // heads
        self.rope_theta, self.eps = rope_theta, eps
        H, Hkv, d = self.H, self.Hkv, self.d
        n = lambda *s: torch.randn(*s) * 0.02  # noqa: E731 - HF init, normal(0, 0.02)
        self.embed = n(V, E)
        self.layers = [
            dict(q=n(H * d, E), k=n(Hkv * d, E), v=n(Hkv * d, E), o=n(E, H * d),
                 gate=n(I, E), up=n(I, E), down=n(E, I), ln1=torch.ones(E), ln2=torch.ones(E))
            for _ in range(layers)
        ]
        self.norm = torch.ones(E)
        self.lm_head = self.embed if tied else n(V, E)

    @torch.no_grad()
    def forward(self, ids):
        F = torch.nn.functional
        B, T = ids.shape
        H, Hkv, d = self.H, self.Hkv, self.d
        cos, sin = rope_tables(T, d, self.rope_theta)
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.embed[ids]
        for L in self.layers:
            h = rms_norm(x, L["ln1"], self.eps)
            q = F.linear(h, L["q"]).view(B, T, H, d).transpose(1, 2)
            k = F.linear(h, L["k"]).view(B, T, Hkv, d).transpose(1, 2)
            v = F.linear(h, L["v"]).view(B, T, Hkv, d).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(H // Hkv, dim=1)
            v = v.repeat_interleave(H // Hkv, dim=1)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(B, T, H * d)
            x = x + F.linear(ctx, L["o"])
            h = rms_norm(x, L["ln2"], self.eps)
            x = x + F.linear(F.silu(F.linear(h, L["gate"])) * F.linear(h, L["up"]), L["down"])
        return F.linear(rms_norm(x, self.norm, self.eps), self.lm_head)


def peak_rss_mib():
    """This process's peak RSS since exec (VmHWM). ru_maxrss would carry over the peak of the node process
    that spawned us (Linux keeps it across fork + exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gemm_gflops():
    """fp32 1024 x 1024 products per second, in GFLOP/s: what this machine's BLAS gives torch."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    t = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 1024**3 / (time.perf_counter() - t) / 1e9


def blas_name():
    cfg = torch.__config__.show()
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
        if "openblas" in maps:
            return "OpenBLAS"
        if "libblas.so" in maps:
            return "libblas (reference BLAS?)"
    except OSError:
        pass
    return "BLAS: " + ("MKL" if "MKL" in cfg else "unknown")
