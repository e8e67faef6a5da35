#!/usr/bin/env python3
"""kiln vs llama.cpp on the same GGUF files, llama-bench's conventions: prompt processing of 512
tokens (pp512), decode of 128 tokens (tg128) at context depth 0 and 2,048, the same thread count,
kiln and llama.cpp alternating per file. Prints tokens/s, the ratio kiln / llama.cpp, peak RSS of
each process, and the weight bandwidth decode achieved (file bytes read per token x tokens/s)
against the machine's memory bandwidth (measured here with a large numpy copy).

Models: random weights of a preset shape (`kiln model init --preset P`) with the real
DeepSeek-Coder vocabulary (tests/fixtures/deepseek-coder-vocab), written by `kiln quantize` as
f32 / q8_0 / q4_k_m, and the same f32 file quantized by llama.cpp's own llama-quantize (Q8_0,
Q4_K_M). llama.cpp is built by benches/build_llama_cpp.sh (AMX off; not used by CI); kiln is
target/release/kiln (`cargo build --release -p kiln-cli`).

Usage: python3 benches/gguf_vs_llama_cpp.py [--presets small,deepseek-coder-1.3b] [--threads 2]
       [--depths 0,2048] [--types f32,q8_0,q4_k_m] [--reps 2] [--work DIR]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOCAB = ROOT / "tests" / "fixtures" / "deepseek-coder-vocab" / "ggml-vocab-deepseek-coder.gguf"


def spawn(cmd, env=None):
    """Runs cmd, returns (stdout, peak RSS in MB of that process)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        try:
            os.execvpe(str(cmd[0]), [str(c) for c in cmd], env or dict(os.environ))
        finally:
            os._exit(127)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed ({os.waitstatus_to_exitcode(status)}): {' '.join(map(str, cmd))}")
    return b"".join(chunks).decode(), usage.ru_maxrss / 1024


def memory_bandwidth_gbs():
    """Copy bandwidth of one large array (read + write bytes per second), best of 5."""
    import numpy as np
    a = np.ones(256 << 20 >> 3)  # 256 MB
    b = np.empty_like(a)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(b, a)
        best = max(best, 2 * a.nbytes / (time.perf_counter() - t))
    return best / 1e9


def make_models(kiln, quantize_bin, preset, types, work):
    d = work / preset
    model = d / "model"
    if not (model / "model.safetensors").exists() and not (model / "model.safetensors.index.json").exists():
        tok = work / "tokenizer.json"
        if not tok.exists():
            subprocess.run([kiln, "tokenizer", "import-gguf", VOCAB, "--out", tok], check=True)
        subprocess.run([kiln, "model", "init", "--preset", preset, "--tokenizer", tok, "--out", model], check=True)
    files = []
    for ty in types:
        f = d / f"kiln-{ty}.gguf"
        if not f.exists():
            subprocess.run([kiln, "quantize", model, "--type", ty, "--out", f], check=True)
        files.append((f"kiln {ty}", f))
        # The same model quantized by llama.cpp's own quantizer, from kiln's f32 file.
        llama_type = {"q8_0": "Q8_0", "q4_k_m": "Q4_K_M"}.get(ty)
        if llama_type:
            g = d / f"llama-{ty}.gguf"
            if not g.exists():
                src = d / "kiln-f32.gguf"
                if not src.exists():
                    subprocess.run([kiln, "quantize", model, "--type", "f32", "--out", src], check=True)
                subprocess.run([quantize_bin, src, g, llama_type], check=True, capture_output=True)
            files.append((f"llama-quantize {ty}", g))
    return files


def bench_llama(bench_bin, f, threads, depth, reps):
    """llama-bench: pp512 (depth 0 only) and tg128 at `depth`; tokens/s and peak RSS."""
    args = [bench_bin, "-m", f, "-t", threads, "-r", reps, "-o", "json", "-n", 128, "-d", depth]
    args += ["-p", 512] if depth == 0 else ["-p", 0]
    out, rss = spawn(args)
    rows = json.loads(out)
    res = {"rss_mb": rss}
    for r in rows:
        key = "pp512" if r["n_prompt"] > 0 else "tg128"
        res[key] = r["avg_ts"]
    return res


def bench_kiln(kiln, f, threads, depth, reps):
    """kiln bench decode on the file: pp512 (prefill of 512 on an empty cache), tg128 after a
    prefill of `depth` tokens (1 for depth 0: a decode needs a first token)."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    res = {}
    rss = 0.0
    if depth == 0:
        out, r = spawn([kiln, "bench", "decode", "--model", f, "--prompt-tokens", 512, "--new-tokens", 1, "--repeat", reps, "--json"], env)
        res["pp512"] = json.loads(out)["prefill_tokens_per_s"]
        rss = max(rss, r)
    out, r = spawn([kiln, "bench", "decode", "--model", f, "--prompt-tokens", max(depth, 1), "--new-tokens", 128, "--repeat", reps, "--json"], env)
    res["tg128"] = json.loads(out)["decode_tokens_per_s"]
    res["rss_mb"] = max(rss, r)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=str(ROOT / "target" / "release" / "kiln"))
    ap.add_argument("--presets", default="small,deepseek-coder-1.3b")
    ap.add_argument("--types", default="f32,q8_0,q4_k_m")
    ap.add_argument("--depths", default="0,2048")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "kiln-bench-gguf"))
    args = ap.parse_args()
    bin_dir = Path(subprocess.run(["bash", ROOT / "benches" / "build_llama_cpp.sh"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    bw = memory_bandwidth_gbs()
    print(f"machine: {cpu}, {os.cpu_count()} cores; memory copy bandwidth {bw:.1f} GB/s; {args.threads} threads; llama.cpp from llama-cpp-python 0.3.36 (AMX off)")
    print(f"{'model':<22} {'file':<22} {'MB':>7} {'test':<12} {'kiln tok/s':>10} {'llama tok/s':>11} {'ratio':>6} {'kiln RSS':>9} {'llama RSS':>9} {'kiln GB/s':>9}")
    for preset in args.presets.split(","):
        files = make_models(args.kiln, bin_dir / "llama-quantize", preset, args.types.split(","), work)
        for label, f in files:
            mb = f.stat().st_size / 1e6
            for depth in map(int, args.depths.split(",")):
                # Alternate: llama.cpp, kiln, per file and depth.
                ll = bench_llama(bin_dir / "llama-bench", f, args.threads, depth, args.reps)
                kl = bench_kiln(args.kiln, f, args.threads, depth, args.reps)
                for test in ["pp512", "tg128"]:
                    if test not in kl or test not in ll:
                        continue
                    name = test if test == "pp512" else f"tg128@d{depth}"
                    gbs = f"{kl[test] * mb / 1e3:.1f}" if test == "tg128" else ""
                    print(f"{preset:<22} {label:<22} {mb:>7.0f} {name:<12} {kl[test]:>10.2f} {ll[test]:>11.2f} {kl[test] / ll[test]:>6.2f} {kl['rss_mb']:>8.0f}M {ll['rss_mb']:>8.0f}M {gbs:>9}", flush=True)


if __name__ == "__main__":
    main()
