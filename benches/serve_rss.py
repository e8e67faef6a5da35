#!/usr/bin/env python3
"""Peak memory of `kiln serve` with a GGUF model: the server's peak RSS (VmHWM) after it answers
one /v1/completions request whose prompt fills --prompt-tokens positions, against issue 19's
budget: file size + KV cache + 15%. The KV cache counted is what the request's positions need in
the server's cache type (f16 by default: layers x 2 x kv_heads x head_dim x 2 bytes per position).

    cargo build --release -p kiln-cli
    python3 benches/serve_rss.py --model ~/.cache/kiln-bench-gguf/deepseek-coder-1.3b/kiln-q4_k_m.gguf
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def vm_hwm_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--kiln", default=str(ROOT / "target" / "release" / "kiln"))
    ap.add_argument("--prompt-tokens", type=int, default=2048)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--port", type=int, default=8391)
    a = ap.parse_args()
    info = json.loads(subprocess.run([a.kiln, "model", "info", a.model, "--json"], check=True, capture_output=True, text=True).stdout)
    layers, kvh, hd = info["num_hidden_layers"], info["num_key_value_heads"], info["hidden_size"] // info["num_attention_heads"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    server = subprocess.Popen([a.kiln, "serve", "--model", a.model, "--port", str(a.port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=1)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        # Code-like text; ~4 characters per token. The server cuts nothing: the prompt is sized
        # below the context.
        line = "    result = compute_value(alpha, beta) + offset * 3  # adjust\n"
        prompt = "def f(alpha, beta, offset):\n" + line * (a.prompt_tokens * 4 // len(line))
        t = time.time()
        c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=3600)
        c.request("POST", "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": a.new_tokens, "temperature": 0}), {"Content-Type": "application/json"})
        r = c.getresponse()
        body = json.loads(r.read())
        if r.status != 200:
            sys.exit(f"request failed: {r.status} {body}")
        used = body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
        peak = vm_hwm_mb(server.pid)
    finally:
        server.terminate()
        server.wait()
    file_mb = os.path.getsize(a.model) / 2**20
    kv_mb = layers * 2 * kvh * hd * 2 * used / 2**20
    budget = (file_mb + kv_mb) * 1.15
    print(f"model {a.model}: file {file_mb:.0f} MiB; request of {used} positions in {time.time() - t:.1f} s; f16 KV cache {kv_mb:.0f} MiB")
    print(f"kiln serve peak RSS {peak:.0f} MiB; budget (file + KV cache) x 1.15 = {budget:.0f} MiB; {'within' if peak <= budget else 'OVER'} ({peak / budget:.2f} of it)")


if __name__ == "__main__":
    main()
