#!/usr/bin/env python3
"""Training throughput on the CPU: `kiln bench train` vs PyTorch (transformers' LlamaForCausalLM).

Same shape (issue #6's: 6 layers, d_model 384, 6 heads, SwiGLU 1024, vocab 8192, untied;
16.9M parameters), same batch (8 windows of 256 tokens), f32, the same step: forward,
mean cross-entropy, backward, global-norm clipping at 1.0, AdamW (0.9, 0.95, wd 0.1). One
warm-up step, then `--steps` timed steps; tokens/s = steps * batch * seq_len / seconds. The two
alternate for `--rounds` rounds and the medians are compared. torch uses `--threads` threads
(default: all cores), kiln its default (all cores).

    pip install torch transformers   # versions: scripts/requirements-fixtures.txt
    cargo build --release -p kiln-cli
    python3 benches/train_vs_pytorch.py [--steps 8] [--rounds 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def torch_trainer(a):
    """A function that times `a.steps` PyTorch training steps (after one warm-up step)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.heads,
                      max_position_embeddings=max(2048, a.seq_len), tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).float().train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)

    def step():
        w = torch.randint(0, a.vocab, (a.batch, a.seq_len + 1))
        logits = model(w[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, a.vocab), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    step()

    def timed():
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        return a.steps * a.batch * a.seq_len / (time.perf_counter() - t0)

    return timed, sum(p.numel() for p in model.parameters())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--intermediate", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--kiln", default=str(ROOT / "target" / "release" / "kiln"))
    ap.add_argument("--rounds", type=int, default=3, help="alternate kiln and PyTorch this many times; medians are compared")
    a = ap.parse_args()
    args = ["--layers", a.layers, "--hidden", a.hidden, "--heads", a.heads, "--intermediate", a.intermediate,
            "--vocab", a.vocab, "--seq-len", a.seq_len, "--batch", a.batch, "--steps", a.steps, "--json"]
    import torch
    import transformers
    torch_timed, n = torch_trainer(a)
    kiln_runs, torch_runs = [], []
    # Alternating rounds: a shared (virtual) machine drifts; medians of interleaved runs
    # compare like with like.
    for r in range(a.rounds):
        out = subprocess.run([a.kiln, "bench", "train", *map(str, args)], check=True, capture_output=True, text=True)
        k = json.loads(out.stdout)
        kiln_runs.append(k["tokens_per_s"])
        torch_runs.append(torch_timed())
        print(f"round {r + 1}: kiln {kiln_runs[-1]:.0f} tokens/s "
              f"(forward+backward {k['forward_backward_s']:.3f} s, clipping {k['clip_s']:.3f} s, AdamW {k['optimizer_s']:.3f} s per step), "
              f"pytorch {torch_runs[-1]:.0f} tokens/s", flush=True)
    kt, pt = statistics.median(kiln_runs), statistics.median(torch_runs)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {cpu}, {os.cpu_count()} cores; torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"model: {k['params']} parameters (torch counts {n}), batch {a.batch} x {a.seq_len}, f32, median of {a.rounds} rounds of {a.steps} steps")
    print(f"  kiln:    {kt:8.0f} tokens/s ({k['threads']} threads)")
    print(f"  pytorch: {pt:8.0f} tokens/s ({a.threads} threads)")
    print(f"  ratio (kiln / pytorch): {kt / pt:.2f}x")


if __name__ == "__main__":
    main()
