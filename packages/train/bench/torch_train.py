"""The same LoRA r8 training step as bench/train.ts, in PyTorch: a plain Llama (RMSNorm, RoPE, GQA attention,
SwiGLU MLP, tied head) of the SmolLM-135M shape, LoRA r8/alpha 16 on gate/up/down_proj, AdamW, clipping 1.0,
batch 2 x 256, fp32, 2 threads. Usage: python3 torch_train.py [layers] [steps]. Prints one JSON line last."""
import json
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("torch is not installed (apt-get install python3-torch libopenblas0-openmp)")
    sys.exit(3)

torch.set_num_threads(2)
torch.manual_seed(0)
LAYERS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
H, I, NH, NKV, V, B, T = 576, 1536, 9, 3, 49152, 2, 256
D = H // NH


class LoraLinear(nn.Module):
    def __init__(self, i, o, r=0, alpha=16):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(o, i) * 0.02, requires_grad=False)
        self.r = r
        if r:
            self.lora_A = nn.Parameter(torch.empty(r, i).uniform_(-1 / math.sqrt(i), 1 / math.sqrt(i)))
            self.lora_B = nn.Parameter(torch.zeros(o, r))
            self.scaling = alpha / r

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
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope(T):
    inv = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))
    f = torch.outer(torch.arange(T).float(), inv)
    emb = torch.cat([f, f], -1)
    return emb.cos(), emb.sin()


def rot(x):
    a, b = x[..., : D // 2], x[..., D // 2 :]
    return torch.cat([-b, a], -1)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = RMSNorm(H), RMSNorm(H)
        self.q, self.k, self.v, self.o = LoraLinear(H, NH * D), LoraLinear(H, NKV * D), LoraLinear(H, NKV * D), LoraLinear(NH * D, H)
        self.gate, self.up, self.down = LoraLinear(H, I, 8), LoraLinear(H, I, 8), LoraLinear(I, H, 8)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = self.n1(x)
        q = self.q(h).view(b, t, NH, D).transpose(1, 2)
        k = self.k(h).view(b, t, NKV, D).transpose(1, 2)
        v = self.v(h).view(b, t, NKV, D).transpose(1, 2)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k = k.repeat_interleave(NH // NKV, 1)
        v = v.repeat_interleave(NH // NKV, 1)
        a = (q @ k.transpose(-1, -2)) / math.sqrt(D) + mask
        ctx = (a.softmax(-1) @ v).transpose(1, 2).reshape(b, t, H)
        x = x + self.o(ctx)
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(V, H) * 0.02, requires_grad=False)
        self.layers = nn.ModuleList([Layer() for _ in range(LAYERS)])
        self.norm = RMSNorm(H)

    def forward(self, ids):
        cos, sin = rope(ids.shape[1])
        mask = torch.full((ids.shape[1], ids.shape[1]), float("-inf")).triu(1)
        x = F.embedding(ids, self.embed)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return F.linear(self.norm(x), self.embed)  # tied head


model = Llama()
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)


def step():
    ids = torch.randint(3, V, (B, T))
    t0 = time.perf_counter()
    logits = model(ids)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad()
    return time.perf_counter() - t0


step()
times = sorted(step() for _ in range(STEPS))
median = times[len(times) // 2]
# Debian's torch calls whatever libblas.so.3 the alternatives system points at (reference BLAS or OpenBLAS).
import os

blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
print(json.dumps({"tokens_per_second": B * T / median, "threads": torch.get_num_threads(), "blas": blas, "step_s": median}))
