#!/usr/bin/env python3
"""Corpus pipeline: `kiln corpus build` vs the same filters + datasketch MinHash LSH in Python.

kiln runs its full pipeline (ingest, rule filters, tree-sitter quality screen, import graph and
Algorithm 1 order, rendering, MinHash, exact + near dedup, Parquet shards, manifest) with
`RAYON_NUM_THREADS=1` (kiln-corpus uses rayon's global pool only, so this pins it to one worker
thread) for the per-core figure, and once more with all cores; then both again with
`--no-quality-screen` (no tree-sitter parse: imports from kiln-repo's scanner, same order). Decontamination is off by default
(`--no-decontam`); `--decontam` turns it on for both kiln runs (the baseline never does it).

The baseline, single process, on exactly the files kiln ingested (listed once, untimed, by
`kiln repo order --json`): read each file, the paper's rule filters (average line > 100, max
line > 1000, alphabetic < 25 %, `<?xml version=` header, JSON/YAML 50..5000 characters; no HTML
visible-text rule, no auto-generated detection, no quality parse), then for every kept file a
datasketch MinHash (num_perm=256) of its 5-gram word shingles (tokens `\\w+`, lower-cased, as
kiln's) with `update_batch`, and a MinHashLSH(threshold=0.85) query + insert. kiln does strictly
more per byte, so the ratio is conservative.

MB/s = ingested bytes / wall seconds (kiln: `files.bytes_ingested` of the manifest; baseline:
bytes of the files it read). Both read from a warm page cache.

    pip install -r benches/requirements.txt
    cargo build --release -p kiln-cli && cargo build --release -p kiln-corpus --example filters_minhash
    python3 benches/corpus_vs_datasketch.py [--cargo-registry] [INPUT ...]
"""
import argparse
import glob
import json
import os
import re
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORD = re.compile(r"\w+")
JSON_YAML = {".json", ".yaml", ".yml"}


def ingested_files(kiln, inp, repos_root):
    """(absolute path) of every file kiln ingests from the input, via `kiln repo order --json`."""
    repos = sorted(p for p in Path(inp).iterdir() if p.is_dir()) if repos_root else [Path(inp)]
    out = []
    for repo in repos:
        r = subprocess.run([kiln, "repo", "order", str(repo), "--json"], capture_output=True, text=True)
        if r.returncode != 0:
            continue
        for comp in json.loads(r.stdout)["components"]:
            out.extend(str(repo / p) for p in comp)
    return out


def keep(path, text):
    lines = text.splitlines() or [""]
    n = len(text)
    if n == 0:
        return False
    lens = [len(l) for l in lines]
    if sum(lens) / len(lines) > 100 or max(lens) > 1000:
        return False
    if sum(c.isalpha() for c in text) / n < 0.25:
        return False
    if "<?xml version=" in text[:100] and not path.endswith((".xsl", ".xslt")):
        return False
    if os.path.splitext(path)[1].lower() in JSON_YAML and not 50 <= n <= 5000:
        return False
    return True


def python_baseline(paths):
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=0.85, num_perm=256)
    nbytes = kept = dups = 0
    for i, p in enumerate(paths):
        data = open(p, "rb").read()
        nbytes += len(data)
        text = data.decode("utf-8").removeprefix("\ufeff")
        if not keep(p, text):
            continue
        kept += 1
        toks = WORD.findall(text.lower())
        if len(toks) < 5:
            shingles = {" ".join(toks)} if toks else set()
        else:
            shingles = {" ".join(toks[j : j + 5]) for j in range(len(toks) - 4)}
        m = MinHash(num_perm=256)
        m.update_batch([s.encode() for s in shingles])
        if shingles and lsh.query(m):
            dups += 1
        lsh.insert(str(i), m)
    return nbytes, kept, dups


def run_kiln(kiln, inputs, repos_root, threads, decontam, extra=()):
    with tempfile.TemporaryDirectory() as out:
        cmd = [kiln, "corpus", "build", *inputs, "--out", out, *extra]
        cmd += ["--repos-root"] if repos_root else []
        cmd += [] if decontam else ["--no-decontam"]
        env = dict(os.environ)
        if threads:
            env["RAYON_NUM_THREADS"] = str(threads)
        else:
            env.pop("RAYON_NUM_THREADS", None)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        m = json.load(open(os.path.join(out, "manifest.json")))
    return m, wall, cpu


def run_same_work(example, paths):
    """kiln's filters + MinHash + LSH alone (examples/filters_minhash.rs), one thread, same files."""
    r = subprocess.run([example], input="\n".join(paths), capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="*", help="repository directories (default: the python3 standard library)")
    ap.add_argument("--cargo-registry", action="store_true", help="also the cargo registry sources (~/.cargo/registry/src/*, one repository per crate)")
    ap.add_argument("--decontam", action="store_true", help="run kiln with decontamination (the HumanEval/MBPP built into kiln)")
    ap.add_argument("--kiln", default=str(ROOT / "target" / "release" / "kiln"))
    ap.add_argument("--same-work", default=str(ROOT / "target" / "release" / "examples" / "filters_minhash"),
                    help="kiln's filters+MinHash example (cargo build --release -p kiln-corpus --example filters_minhash)")
    args = ap.parse_args()
    if not Path(args.kiln).exists():
        sys.exit("need a release build of kiln (cargo build --release -p kiln-cli)")
    try:
        import datasketch
    except ImportError:
        sys.exit("need datasketch: pip install -r benches/requirements.txt")
    inputs = [(p, False) for p in (args.inputs or [sysconfig.get_paths()["stdlib"]])]
    if args.cargo_registry:
        inputs += [(p, True) for p in sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*")))]
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {cpu_model}, {os.cpu_count()} cores; datasketch {datasketch.__version__}; kiln decontamination {'on' if args.decontam else 'off'}")
    for inp, repos_root in inputs:
        paths = ingested_files(args.kiln, inp, repos_root)
        # Warm the page cache for both.
        for p in paths:
            open(p, "rb").read()
        m1, w1, c1 = run_kiln(args.kiln, [inp], repos_root, 1, args.decontam)
        mn, wn, cn = run_kiln(args.kiln, [inp], repos_root, None, args.decontam)
        fast = ["--no-quality-screen"]
        mf1, wf1, cf1 = run_kiln(args.kiln, [inp], repos_root, 1, args.decontam, fast)
        mfn, wfn, cfn = run_kiln(args.kiln, [inp], repos_root, None, args.decontam, fast)
        t0 = time.perf_counter()
        pb, pk, pd = python_baseline(paths)
        pw = time.perf_counter() - t0
        kb = m1["files"]["bytes_ingested"]
        k1, kn, py = kb / 1e6 / w1, kb / 1e6 / wn, pb / 1e6 / pw
        print(f"input {inp}{' (repos root)' if repos_root else ''}")
        print(f"  kiln:   {m1['files']['files_ingested']} files, {kb / 1e6:.1f} MB ingested, {m1['files']['files_kept']} kept, "
              f"{m1['samples']['candidates']} samples, {m1['samples']['near_duplicates']} near dup")
        print(f"  python: {len(paths)} files, {pb / 1e6:.1f} MB read, {pk} kept, {pd} near dup (LSH query hit)")
        print(f"  kiln 1 thread:  {w1:7.2f} s wall, {c1:7.2f} s cpu, {k1:8.2f} MB/s")
        print(f"  kiln all cores: {wn:7.2f} s wall, {cn:7.2f} s cpu, {kn:8.2f} MB/s ({os.cpu_count()} cores)")
        f1, fn_ = kb / 1e6 / wf1, kb / 1e6 / wfn
        print(f"  kiln --no-quality-screen 1 thread:  {wf1:7.2f} s wall, {cf1:7.2f} s cpu, {f1:8.2f} MB/s, "
              f"{mf1['samples']['kept']} samples kept (with the screen: {m1['samples']['kept']})")
        print(f"  kiln --no-quality-screen all cores: {wfn:7.2f} s wall, {cfn:7.2f} s cpu, {fn_:8.2f} MB/s")
        print(f"  python 1 proc:  {pw:7.2f} s wall, {py:8.2f} MB/s")
        print(f"  ratio per core (kiln 1 thread / python): {k1 / py:.1f}x; without the quality screen: {f1 / py:.1f}x")
        if Path(args.same_work).exists():
            sw = run_same_work(args.same_work, paths)
            swr = sw["bytes"] / 1e6 / sw["seconds"]
            print(f"  same work as the baseline (kiln filters + MinHash + LSH only, 1 thread): {swr:8.2f} MB/s, "
                  f"{sw['kept']} kept, {sw['near_dup_hits']} LSH hits -> {swr / py:.1f}x python")


if __name__ == "__main__":
    main()
