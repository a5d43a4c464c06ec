"""Multiple-choice scoring in PyTorch as lm-evaluation-harness does it: every option gets its own full forward
of (context + continuation)[:-1] (batch 1), full logits, log_softmax, the continuation's log-probs summed, and
the greedy check. A plain Llama forward (HF modeling_llama semantics) with random weights of the given shape:
the numbers measure speed only. Input: the JSON file bench/score.ts writes ({config, questions: [{context,
continuations}]}). Output: a human line per step on stderr, one JSON line on stdout.

    /usr/bin/python3 bench/torch_score.py questions.json
"""

import json
import math
import resource
import sys
import time

import torch

torch.set_num_threads(2)
torch.manual_seed(0)


def rope_tables(seq, head_dim, theta):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    freqs = torch.outer(torch.arange(seq, dtype=torch.float32), inv)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Llama:
    def __init__(self, c):
        self.c = c
        E, I, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
        H, Hkv = c["num_attention_heads"], c["num_key_value_heads"]
        d = E // H
        self.H, self.Hkv, self.d, self.eps = H, Hkv, d, c["rms_norm_eps"]
        n = lambda *s: torch.randn(*s) * 0.02  # noqa: E731 - HF init, normal(0, 0.02)
        self.emb = n(V, E)
        self.layers = [
            dict(q=n(H * d, E), k=n(Hkv * d, E), v=n(Hkv * d, E), o=n(E, H * d),
                 gate=n(I, E), up=n(I, E), down=n(E, I), ln1=torch.ones(E), ln2=torch.ones(E))
            for _ in range(c["num_hidden_layers"])
        ]
        self.norm = torch.ones(E)
        self.head = self.emb if c.get("tie_word_embeddings") else n(V, E)

    def rms(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    @torch.no_grad()
    def forward(self, ids):
        B, T = ids.shape
        H, Hkv, d = self.H, self.Hkv, self.d
        cos, sin = rope_tables(T, d, self.c["rope_theta"])
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.emb[ids]
        for L in self.layers:
            h = self.rms(x, L["ln1"])
            q = (h @ L["q"].T).view(B, T, H, d).transpose(1, 2)
            k = (h @ L["k"].T).view(B, T, Hkv, d).transpose(1, 2)
            v = (h @ L["v"].T).view(B, T, Hkv, d).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(H // Hkv, dim=1)
            v = v.repeat_interleave(H // Hkv, dim=1)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(B, T, H * d)
            x = x + ctx @ L["o"].T
            h = self.rms(x, L["ln2"])
            x = x + (torch.nn.functional.silu(h @ L["gate"].T) * (h @ L["up"].T)) @ L["down"].T
        return self.rms(x, self.norm) @ self.head.T


def peak_rss_mib():
    """This process's peak RSS since exec (VmHWM). ru_maxrss would carry over the peak of the node process
    that spawned us (Linux keeps it across fork + exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gemm_gflops():
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    t = time.perf_counter()
    for _ in range(5):
        a @ b
    return 2 * 1024**3 * 5 / (time.perf_counter() - t) / 1e9


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


def main():
    data = json.load(open(sys.argv[1]))
    model = Llama(data["config"])
    questions = data["questions"]
    # Warm-up with the first option.
    q0 = questions[0]
    model.forward(torch.tensor([(q0["context"] + q0["continuations"][0])[:-1]]))
    forwards = tokens = 0
    t0 = time.perf_counter()
    for q in questions:
        for cont in q["continuations"]:
            inp = (q["context"] + cont)[:-1]
            logits = model.forward(torch.tensor([inp]))[0]
            logp = torch.log_softmax(logits[len(inp) - len(cont):], dim=-1)
            target = torch.tensor(cont)
            _ = logp.gather(1, target[:, None]).sum().item()
            _ = bool((logp.argmax(-1) == target).all())
            forwards += 1
            tokens += len(inp)
    sec = time.perf_counter() - t0
    print(json.dumps({
        "questions_per_s": len(questions) / sec,
        "seconds": sec,
        "forwards": forwards,
        "tokens": tokens,
        "peak_rss_mib": peak_rss_mib(),
        "blas": blas_name(),
        "gemm_gflops": gemm_gflops(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
