#!/usr/bin/env python3
"""Single-sequence decode speed: kiln vs transformers (PyTorch) on the same weights, same machine.

Writes a random-weight model of a preset shape with `kiln model init`, then times, on that one
checkpoint:
  - kiln:         `kiln bench decode --model DIR` (KV cache, greedy, EOS ignored)
  - transformers: LlamaForCausalLM.from_pretrained(DIR), a manual greedy loop with past_key_values
Both use the same number of threads (--threads, default every core), the same prompt length and number of new tokens, best of N timed runs after a
warm-up. Prints kiln's figure, the peer's figure and the ratio (>1 means kiln is faster).

Needs: a release build of kiln (cargo build --release -p kiln-cli), and torch + transformers
(pip install -r scripts/requirements-fixtures.txt). Not part of CI.

    python3 benches/decode_vs_transformers.py --preset small --dtype f32
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def kiln_figure(kiln, model_dir, args):
    cmd = [kiln, "bench", "decode", "--model", str(model_dir), "--dtype", args.dtype,
           "--prompt-tokens", str(args.prompt_tokens), "--new-tokens", str(args.new_tokens),
           "--repeat", str(args.repeat), "--json"]
    # candle's CPU kernels size their thread pool from RAYON_NUM_THREADS.
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def torch_figure(model_dir, args):
    import torch
    from transformers import LlamaForCausalLM

    torch.set_num_threads(args.threads)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa").eval()
    vocab = model.config.vocab_size
    # The same prompt ids kiln's bench uses.
    prompt = torch.tensor([[(i * 7919 + 13) % vocab for i in range(args.prompt_tokens)]])
    best_prefill, best_decode = float("inf"), float("inf")
    with torch.inference_mode():
        for rnd in range(args.repeat + 1):
            t0 = time.perf_counter()
            out = model(prompt, use_cache=True)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            past = out.past_key_values
            prefill = time.perf_counter() - t0
            t1 = time.perf_counter()
            for _ in range(args.new_tokens):
                out = model(nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            decode = time.perf_counter() - t1
            if rnd > 0:
                best_prefill, best_decode = min(best_prefill, prefill), min(best_decode, decode)
    return {
        "prefill_tokens_per_s": args.prompt_tokens / best_prefill,
        "decode_tokens_per_s": args.new_tokens / best_decode,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16", "f16"])
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kiln", default=str(ROOT / "target" / "release" / "kiln"))
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="threads for both (1 gives a per-core figure that other load disturbs least)")
    args = ap.parse_args()
    if not Path(args.kiln).exists():
        sys.exit(f"{args.kiln} not found: run `cargo build --release -p kiln-cli` first (or pass --kiln)")

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / args.preset
        subprocess.run([args.kiln, "model", "init", "--preset", args.preset, "--out", str(model_dir),
                        "--dtype", args.dtype], check=True)
        k = kiln_figure(args.kiln, model_dir, args)
        t = torch_figure(model_dir, args)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {cpu}, {os.cpu_count()} cores, {args.threads} thread(s) each; preset {args.preset} ({k['parameters'] / 1e6:.1f}M params), {args.dtype}, "
          f"prompt {args.prompt_tokens}, new {args.new_tokens}, best of {args.repeat}")
    print(f"{'':14}{'kiln':>12}{'transformers':>14}{'ratio':>8}")
    for key, label in [("decode_tokens_per_s", "decode tok/s"), ("prefill_tokens_per_s", "prefill tok/s")]:
        print(f"{label:14}{k[key]:12.1f}{t[key]:14.1f}{k[key] / t[key]:8.2f}")
    print(f"(transformers torch {t['torch']}, {t['threads']} threads)")


if __name__ == "__main__":
    main()
