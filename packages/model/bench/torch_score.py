"""Multiple-choice scoring in PyTorch as lm-evaluation-harness does it: every option gets its own full forward
of (context + continuation)[:-1] (batch 1), full logits, log_softmax, the continuation's log-probs summed, and
the greedy check. A plain Llama forward (torch_llama.py: HF modeling_llama semantics) with random weights of
the given shape: the numbers measure speed only. Input: the JSON file bench/score.ts writes ({config,
questions: [{context, continuations}]}). Output: a human line per step on stderr, one JSON line on stdout.

    /usr/bin/python3 bench/torch_score.py questions.json
"""

import json
import sys
import time

import torch

from torch_llama import Llama, blas_name, gemm_gflops, peak_rss_mib

torch.set_num_threads(2)
torch.manual_seed(0)


def model_of(c):
    """The Llama of an HF config.json."""
    return Llama(
        hidden=c["hidden_size"],
        intermediate=c["intermediate_size"],
        vocab=c["vocab_size"],
        layers=c["num_hidden_layers"],
        heads=c["num_attention_heads"],
        kv_heads=c["num_key_value_heads"],
        tied=c.get("tie_word_embeddings", False),
        rope_theta=c["rope_theta"],
        eps=c["rms_norm_eps"],
    )


def main():
    data = json.load(open(sys.argv[1]))
    model = model_of(data["config"])
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
