"""Forward tokens/s of a plain Llama in PyTorch (the yardstick for bench/forward.ts).

A minimal Llama (torch_llama.py: RMSNorm, RoPE with rotate_half, GQA, SwiGLU, lm_head or tied embeddings),
random weights (normal 0.02 as HF's init), fp32, torch.no_grad, 2 threads. `transformers` is not installed
here, so the model is written out; it is the same arithmetic as modeling_llama.py.

Usage: python3 torch_forward.py '{"hidden":576,...,"batch":4,"seq":256,"runs":3}'  -> one JSON line
"""

import json
import statistics
import sys
import time

try:
    import torch
except Exception as e:  # noqa: BLE001
    print(json.dumps({"error": f"import torch failed: {e}"}))
    sys.exit(0)

from torch_llama import Llama, gemm_gflops  # noqa: E402 - after the torch check

torch.set_num_threads(2)
torch.manual_seed(0)


def main():
    c = json.loads(sys.argv[1])
    m = Llama(c["hidden"], c["intermediate"], c["vocab"], c["layers"], c["heads"], c["kv_heads"], c["tied"])
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
