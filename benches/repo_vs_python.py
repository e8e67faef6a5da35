#!/usr/bin/env python3
"""Repository ingest + import parsing + Algorithm 1 ordering: kiln vs a plain-Python peer.

The peer is what DeepSeek-Coder describes (spec §2.4: imports "found with regular expressions"):
os.walk with the same skip rules, regex import extraction for the nine languages kiln parses,
path-suffix resolution, and the minimum-in-degree order per weakly connected component. kiln does
more per file (a lexer that skips comments and strings, multi-line import forms, per-language
resolution), so the ratio is conservative.

Both run over the same repos root (each sub-folder is one repository) on the same machine and
report files/s and MB/s of kept source files. Default root: the cargo registry sources.

    cargo build --release -p kiln-cli
    python3 benches/repo_vs_python.py [--root ~/.cargo/registry/src/index.crates.io-*]
"""
import argparse
import glob
import heapq
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", "node_modules", "vendor", "third_party", "dist", "build", "target", "__pycache__", ".venv", "venv"}
MAX_FILE = 1 << 20
IMPORT_RE = {
    ".py": re.compile(r"^\s*(?:from\s+([.\w]+)\s+import|import\s+([.\w]+))", re.M),
    ".java": re.compile(r"^\s*import\s+(?:static\s+)?([\w.]+)", re.M),
    ".cs": re.compile(r"^\s*using\s+([\w.]+)\s*;", re.M),
    ".c": re.compile(r'^\s*#\s*include\s*["<]([^">]+)[">]', re.M),
    ".h": re.compile(r'^\s*#\s*include\s*["<]([^">]+)[">]', re.M),
    ".cpp": re.compile(r'^\s*#\s*include\s*["<]([^">]+)[">]', re.M),
    ".hpp": re.compile(r'^\s*#\s*include\s*["<]([^">]+)[">]', re.M),
    ".js": re.compile(r"""(?:from\s+|require\()\s*['"]([^'"]+)['"]""", re.M),
    ".ts": re.compile(r"""(?:from\s+|require\()\s*['"]([^'"]+)['"]""", re.M),
    ".go": re.compile(r'^\s*(?:import\s+)?"([\w./-]+)"', re.M),
    ".rs": re.compile(r"^\s*(?:pub\s+)?(?:mod\s+(\w+)\s*;|use\s+crate::([\w:]+))", re.M),
}


def python_peer(root):
    files = bytes_ = 0
    for repo in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        paths, texts = [], []
        for dirpath, dirnames, filenames in os.walk(repo):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            for name in filenames:
                p = os.path.join(dirpath, name)
                if os.path.islink(p) or os.path.getsize(p) > MAX_FILE:
                    continue
                try:
                    data = open(p, "rb").read()
                    if b"\0" in data[:8192]:
                        continue
                    text = data.decode("utf-8")
                except (OSError, UnicodeDecodeError):
                    continue
                paths.append(os.path.relpath(p, repo))
                texts.append(text)
        files += len(paths)
        bytes_ += sum(len(t.encode()) for t in texts)
        # Resolution by path suffix over the module name turned into a path.
        by_stem = defaultdict(list)
        for i, p in enumerate(paths):
            by_stem[os.path.splitext(os.path.basename(p))[0]].append(i)
        succ = defaultdict(set)
        indeg = [0] * len(paths)
        for i, (p, t) in enumerate(zip(paths, texts)):
            rx = IMPORT_RE.get(os.path.splitext(p)[1])
            if not rx:
                continue
            for m in rx.finditer(t):
                name = next(g for g in m.groups() if g)
                stem = re.split(r"[./:]", name.strip("."))[-1]
                for j in by_stem.get(stem, []):
                    if j != i and i not in succ[j]:
                        succ[j].add(i)
                        indeg[i] += 1
        # Weakly connected components (union-find), then minimum in-degree order.
        parent = list(range(len(paths)))

        def find(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for j, ds in succ.items():
            for i in ds:
                parent[find(i)] = find(j)
        comps = defaultdict(list)
        for i in range(len(paths)):
            comps[find(i)].append(i)
        for comp in comps.values():
            heap = [(indeg[i], i) for i in comp]
            heapq.heapify(heap)
            done = set()
            while heap:
                d, i = heapq.heappop(heap)
                if i in done or d != indeg[i]:
                    continue
                done.add(i)
                for n in succ.get(i, ()):
                    if n not in done:
                        indeg[n] -= 1
                        heapq.heappush(heap, (indeg[n], n))
    return files, bytes_


def main():
    default = sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*")))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=default[0] if default else None)
    ap.add_argument("--kiln", default=str(ROOT / "target" / "release" / "kiln"))
    args = ap.parse_args()
    if not args.root or not Path(args.kiln).exists():
        sys.exit("need --root and a release build of kiln (cargo build --release -p kiln-cli)")
    # Warm the page cache so both read from memory.
    python_peer(args.root)
    out = subprocess.run([args.kiln, "bench", "repo", args.root, "--repos-root", "--json"], check=True, capture_output=True, text=True).stdout
    k = json.loads(out)
    t0 = time.perf_counter()
    pf, pb = python_peer(args.root)
    pt = time.perf_counter() - t0
    p = {"files_per_s": pf / pt, "mb_per_s": pb / 1e6 / pt}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {cpu}, {os.cpu_count()} cores; root {args.root} ({k['repos']} repos)")
    print(f"kiln: {k['files']} files, {k['bytes'] / 1e6:.1f} MB kept; python peer: {pf} files, {pb / 1e6:.1f} MB kept")
    print(f"{'':12}{'kiln':>10}{'python':>10}{'ratio':>8}")
    for key, label in [("files_per_s", "files/s"), ("mb_per_s", "MB/s")]:
        print(f"{label:12}{k[key]:10.1f}{p[key]:10.1f}{k[key] / p[key]:8.2f}")


if __name__ == "__main__":
    main()
