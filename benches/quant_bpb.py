#!/usr/bin/env python3
"""What quantizing costs a trained model: held-out bits per byte of a `kiln quickstart` model in
f32 (its safetensors) and as the GGUF files `kiln quantize` writes (q8_0, q4_k_m, q4_0), scored by
`kiln eval bpb` on the source files of the run's held-out repositories (quickstart.json names
them; they were split off by repository before training, so the model never saw them).

Issue 19's bar: Q8_0 within 1% of f32, Q4_K_M within 5%. Each GGUF is scored with kiln's default
f16 KV cache and with an f32 cache (--cache-type f32), so the cache's share is visible too.

Usage: python3 benches/quant_bpb.py --run kiln-quickstart [--kiln target/release/kiln]
       [--types q8_0,q4_k_m,q4_0] [--caches f16,f32] [--work DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bpb(kiln, model, paths, extra=()):
    """`kiln eval bpb --json` on `paths`."""
    out = subprocess.run([kiln, "eval", "bpb", "--model", model, *extra, "--json", *paths], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    sys.stdout.reconfigure(line_buffering=True)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a kiln quickstart output folder")
    ap.add_argument("--kiln", default=str(ROOT / "target" / "release" / "kiln"))
    ap.add_argument("--types", default="q8_0,q4_k_m,q4_0")
    ap.add_argument("--caches", default="f16,f32", help="KV cache types to score each GGUF with")
    ap.add_argument("--work", default=None)
    a = ap.parse_args()
    run = Path(a.run)
    q = json.load(open(run / "quickstart.json"))
    held = set(q["stages"]["eval"]["info"]["heldout_repos"])
    paths = sorted(s["path"] for s in q["selected"] if os.path.basename(s["path"].rstrip("/")) in held)
    missing = held - {os.path.basename(p.rstrip("/")) for p in paths}
    if missing:
        print(f"held-out repositories not found among the run's sources: {sorted(missing)}")
    model = run / "model"
    cfg = json.load(open(model / "config.json"))
    print(f"model: {model} (hidden {cfg['hidden_size']}, ffn {cfg['intermediate_size']}, {cfg['num_hidden_layers']} layers, vocab {cfg['vocab_size']})")
    print(f"held-out repositories: {len(paths)}")
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="kiln-quant-bpb-"))
    work.mkdir(parents=True, exist_ok=True)
    base = bpb(a.kiln, model, paths)
    print(f"\n| model | cache | bits per byte | vs f32 |\n|---|---|---|---|")
    print(f"| f32 safetensors | f32 | {base['bits_per_byte']:.4f} | ({base['files']} files, {base['bytes']} bytes) |")
    for ty in a.types.split(","):
        f = work / f"model-{ty}.gguf"
        report = subprocess.run([a.kiln, "quantize", model, "--type", ty, "--out", f], check=True, capture_output=True, text=True)
        fallbacks = [l.strip() for l in (report.stdout + report.stderr).splitlines() if "written as" in l]
        for cache in a.caches.split(","):
            r = bpb(a.kiln, f, paths, ["--cache-type", cache])
            rel = r["bits_per_byte"] / base["bits_per_byte"] - 1
            print(f"| {ty} ({f.stat().st_size / 1e6:.1f} MB) | {cache} | {r['bits_per_byte']:.4f} | {100 * rel:+.2f}% |")
        if fallbacks:
            print(f"|  {ty}: {len(fallbacks)} tensors fell back to another type, e.g. {fallbacks[0]} | | | |")


if __name__ == "__main__":
    main()
