#!/usr/bin/env python3
"""Serving latency of `kiln serve` on the CPU: time to first token and decode speed for 1, 4 and
16 concurrent streaming clients, and prompt processing of a ~2,000-token repository-level infill
prompt with and without the prefix cache.

The model is the `small` preset (random weights: speed does not depend on what the weights say)
with the real DeepSeek-Coder vocabulary from tests/fixtures/deepseek-coder-vocab. Each client streams one
/v1/completions request of --new-tokens tokens (greedy); the server runs --slots generations at
once, decoding them together (default: as many as clients).

    cargo build --release -p kiln-cli
    python3 benches/serve_latency.py [--new-tokens 32] [--clients 1,4,16]
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GGUF = ROOT / "tests" / "fixtures" / "deepseek-coder-vocab" / "ggml-vocab-deepseek-coder.gguf"


def make_model(kiln, out):
    subprocess.run([kiln, "model", "init", "--preset", "small", "--out", str(out)], check=True)
    subprocess.run([kiln, "tokenizer", "import-gguf", str(GGUF), "--out", str(out / "tokenizer.json")], check=True)


def start_server(kiln, model, port, slots):
    proc = subprocess.Popen([kiln, "serve", "--model", str(model), "--port", str(port), "--max-concurrency", str(slots)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("kiln serve did not come up: " + proc.stderr.read())


def stream_one(port, prompt, new_tokens, out):
    """One streaming request; appends (ttft_s, decode_tok_s, tokens) to out."""
    body = json.dumps({"prompt": prompt, "max_tokens": new_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    first = last = None
    tokens = 0
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        elif chunk["choices"] and chunk["choices"][0]["text"]:
            now = time.perf_counter()
            first = first or now
            last = now
    ttft = (first or time.perf_counter()) - t0
    decode = (tokens - 1) / (last - first) if first and last and last > first and tokens > 1 else 0.0
    out.append((ttft, decode, tokens))


def concurrency_round(port, clients, new_tokens):
    results = []
    threads = [threading.Thread(target=stream_one, args=(port, f"def function_{i}(x):\n    ", new_tokens, results)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return results, wall


def infill(port, context, prefix, cache):
    body = json.dumps({"input_extra": [{"filename": "lib/helpers.py", "text": context}], "input_prefix": prefix,
                       "input_suffix": "\n", "n_predict": 4, "temperature": 0, "cache_prompt": cache})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/infill", body, {"Content-Type": "application/json"})
    return json.loads(c.getresponse().read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=str(ROOT / "target" / "release" / "kiln"))
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--max-slots", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--port", type=int, default=18431)
    a = ap.parse_args()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {cpu}, {os.cpu_count()} cores; model: small preset (f32), DeepSeek-Coder vocabulary")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "small"
        make_model(a.kiln, model)
        for clients in [int(x) for x in a.clients.split(",")]:
            slots = min(clients, a.max_slots)
            proc = start_server(a.kiln, model, a.port, slots)
            try:
                stream_one(a.port, "warm up", 2, [])
                results, wall = concurrency_round(a.port, clients, a.new_tokens)
            finally:
                proc.terminate()
                proc.wait()
            ttft = [r[0] * 1000 for r in results]
            dec = [r[1] for r in results if r[1] > 0]
            total = sum(r[2] for r in results)
            print(f"{clients:3d} clients, {slots} slots: time to first token median {statistics.median(ttft):7.0f} ms "
                  f"(max {max(ttft):7.0f}), decode per client median {statistics.median(dec) if dec else 0:6.1f} tok/s, "
                  f"all clients {total / wall:6.1f} tok/s")
        # Prefix cache: a ~2,000-token repository-level prompt, then the next keystroke.
        context = "".join(f"def helper_{i}(values, scale={i}):\n    return [v * scale + {i} for v in values]\n\n" for i in range(66))
        proc = start_server(a.kiln, model, a.port, 1)
        try:
            cold = infill(a.port, context, "def main():\n    return helper_", False)
            infill(a.port, context, "def main():\n    return helper_", True)  # fills the slot's cache
            warm = infill(a.port, context, "def main():\n    return helper_1", True)
        finally:
            proc.terminate()
            proc.wait()
        print(f"repo-level infill prompt of {cold['tokens_evaluated']} tokens: prompt processing {cold['timings']['prompt_ms']:.0f} ms "
              f"without the prefix cache, {warm['timings']['prompt_ms']:.0f} ms with it "
              f"({warm['tokens_cached']} tokens reused, {warm['timings']['prompt_n']} processed): "
              f"{cold['timings']['prompt_ms'] / max(warm['timings']['prompt_ms'], 1e-3):.0f}x")


if __name__ == "__main__":
    main()
