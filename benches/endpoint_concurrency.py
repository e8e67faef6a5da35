#!/usr/bin/env python3
"""`kiln eval --endpoint` with one request in flight vs `--concurrency N`, against one server.

Starts `kiln serve --model MODEL --max-concurrency N` on a free loopback port, then scores the
first `--limit` HumanEval problems through it with `--concurrency 1` (how the client worked
before: one request at a time) and `--concurrency N`, alternating, `--rounds` times each. Both
must give the same per-sample completions (greedy decoding; kiln serve's batched CPU decode gives
each request the tokens it would get alone). Prints each wall time and the ratio.

    cargo build --release -p kiln-cli
    python3 benches/endpoint_concurrency.py --model kiln-quickstart/model [--limit 40] [--n 4]
"""
import argparse
import json
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def completions(out):
    rows = [json.loads(l) for l in (out / "samples.jsonl").read_text().splitlines()]
    return sorted((r["task_id"], r["completion"]) for r in rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=str(ROOT / "target" / "release" / "kiln"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    port = free_port()
    server = subprocess.Popen([a.kiln, "serve", "--model", a.model, "--port", str(port), "--max-concurrency", str(a.n)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        times = {1: [], a.n: []}
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(a.rounds):
                for c in (1, a.n):
                    out = Path(tmp) / f"c{c}-r{r}"
                    t = time.perf_counter()
                    subprocess.run([a.kiln, "eval", "humaneval", "--endpoint", f"http://127.0.0.1:{port}", "--limit", str(a.limit),
                                    "--max-tokens", str(a.max_tokens), "--concurrency", str(c), "--workers", "2", "--out", str(out),
                                    "--json"], check=True, capture_output=True)
                    times[c].append(time.perf_counter() - t)
                    results.setdefault(c, completions(out))
                    assert completions(out) == results[c], "a rerun gave other completions"
        same = results[1] == results[a.n]
        best1, bestn = min(times[1]), min(times[a.n])
        print(f"{a.limit} HumanEval problems, {a.max_tokens} new tokens max, kiln serve --max-concurrency {a.n}")
        print(f"  --concurrency 1:  {best1:7.1f} s  (runs: {', '.join(f'{t:.1f}' for t in times[1])})")
        print(f"  --concurrency {a.n}:  {bestn:7.1f} s  (runs: {', '.join(f'{t:.1f}' for t in times[a.n])})")
        print(f"  speed-up: {best1 / bestn:.2f}x; same per-sample completions: {same}")
        if not same:
            raise SystemExit("the completions differ between --concurrency 1 and N")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
