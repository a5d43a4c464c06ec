"""Forward tokens/s of a plain Llama in PyTorch (the yardstick for bench/forward.ts).

A minimal Llama (RMSNorm, RoPE with rotate_half, GQA, SwiGLU, lm_head or tied embeddings), random weights
(normal 0.02 as HF's init), fp32, torch.no_grad, 2 threads. `transformers` is not installed here, so the
model is written out; it is the same arithmetic as modeling_llama.py.

Usage: python3 torch_forward.py '{"hidden":576,...,"batch":4,"seq":256,"runs":3}'  -> one JSON line
"""

import json
import math
import statistics
import sys
import time

try:
    import torch
except Exception as e:  # noqa: BLE001
    print(json.dumps({"error": f"import torch failed: {e}"}))
    sys.exit(0)

torch.set_num_threads(2)
torch.manual_seed(0)


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Llama:
    def __init__(self, c):
        self.c = c
        E, I, V = c["hidden"], c["intermediate"], c["vocab"]
        self.H, self.Hkv = c["heads"], c["kv_heads"]
        self.d = E // self.H
        n = lambda *s: torch.randn(*s) * 0.02  # noqa: E731
        self.embed = n(V, E)
        self.layers = []
        for _ in range(c["layers"]):
            self.layers.append(
                dict(
                    ln1=torch.ones(E),
                    q=n(self.H * self.d, E),
                    k=n(self.Hkv * self.d, E),
                    v=n(self.Hkv * self.d, E),
                    o=n(E, self.H * self.d),
                    ln2=torch.ones(E),
                    gate=n(I, E),
                    up=n(I, E),
                    down=n(E, I),
                )
            )
        self.norm = torch.ones(E)
        self.lm_head = self.embed if c["tied"] else n(V, E)
        inv = 1.0 / (10000 ** (torch.arange(0, self.d, 2).float() / self.d))
        self.inv_freq = inv

    def forward(self, ids):
        B, T = ids.shape
        F = torch.nn.functional
        x = self.embed[ids]
        pos = torch.arange(T).float()
        freqs = torch.outer(pos, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        mask = torch.full((T, T), float("-inf")).triu(1)
        g = self.H // self.Hkv
        for L in self.layers:
            h = rms_norm(x, L["ln1"], 1e-5)
            q = F.linear(h, L["q"]).view(B, T, self.H, self.d).transpose(1, 2)
            k = F.linear(h, L["k"]).view(B, T, self.Hkv, self.d).transpose(1, 2)
            v = F.linear(h, L["v"]).view(B, T, self.Hkv, self.d).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(g, dim=1)
            v = v.repeat_interleave(g, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(self.d) + mask
            ctx = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, -1)
            x = x + F.linear(ctx, L["o"])
            h = rms_norm(x, L["ln2"], 1e-5)
            x = x + F.linear(F.silu(F.linear(h, L["gate"])) * F.linear(h, L["up"]), L["down"])
        return F.linear(rms_norm(x, self.norm, 1e-5), self.lm_head)


def gemm_gflops():
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    t = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 1024**3 / (time.perf_counter() - t) / 1e9


def main():
    c = json.loads(sys.argv[1])
    m = Llama(c)
    ids = torch.randint(0, c["vocab"], (c["batch"], c["seq"]))
    times = []
    with torch.no_grad():
        m.forward(ids)  # warm-up
        for _ in range(c.get("runs", 3)):
            t = time.perf_counter()
            m.forward(ids)
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(
        json.dumps(
            {
                "tokens_per_s": c["batch"] * c["seq"] / med,
                "seconds": med,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "gemm_gflops": gemm_gflops(),
            }
        )
    )


if __name__ == "__main__":
    main()
