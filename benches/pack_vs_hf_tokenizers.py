#!/usr/bin/env python3
"""Tokenization throughput: `kiln data pack` vs the Python `tokenizers` package (`encode_batch`).

Same tokenizer (the real DeepSeek-Coder vocabulary, imported from tests/fixtures/deepseek-coder-vocab's GGUF with
`kiln tokenizer import-gguf`, unless --tokenizer is given), same texts (the samples of a kiln
corpus; by default one built from the python3 standard library), same machine, one run.

* kiln: `kiln data pack --fim-rate 0 --val-fraction 0`, wall time of the whole command: reading
  the Parquet shards, tokenizing in parallel, packing windows and writing the Megatron files.
  It does strictly more than the peer.
* peer: `tokenizers.Tokenizer.from_file(...).encode_batch(texts, add_special_tokens=False)`, the
  texts already in memory (read beforehand, untimed), all cores (tokenizers parallelises
  `encode_batch` with Rayon).

MB/s = UTF-8 bytes of the sample texts / wall seconds. Token counts are printed for both as a
sanity check (kiln adds one BOS and one EOS per document).

    pip install tokenizers
    cargo build --release -p kiln-cli
    python3 benches/pack_vs_hf_tokenizers.py [--corpus DIR] [--tokenizer tokenizer.json]
"""
import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", help="kiln corpus directory (default: built from the python3 stdlib)")
    ap.add_argument("--tokenizer", help="tokenizer.json (default: DeepSeek-Coder's, imported from the committed GGUF vocabulary)")
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--kiln", default=str(ROOT / "target" / "release" / "kiln"))
    args = ap.parse_args()
    try:
        import tokenizers
    except ImportError:
        sys.exit("need the Python tokenizers package: pip install tokenizers")
    kiln = args.kiln
    if not Path(kiln).exists():
        sys.exit("need a release build of kiln (cargo build --release -p kiln-cli)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = args.corpus
        if not corpus:
            corpus = str(tmp / "corpus")
            run([kiln, "corpus", "build", sysconfig.get_paths()["stdlib"], "--out", corpus, "--no-decontam"])
        tok_path = args.tokenizer
        if not tok_path:
            tok_path = str(tmp / "tok" / "tokenizer.json")
            gguf = ROOT / "tests" / "fixtures" / "deepseek-coder-vocab" / "ggml-vocab-deepseek-coder.gguf"
            run([kiln, "tokenizer", "import-gguf", str(gguf), "--out", tok_path])
        lines = run([kiln, "corpus", "inspect", corpus, "--json", "--n", "1000000000"]).stdout.splitlines()
        texts = [json.loads(l)["text"] for l in lines]
        nbytes = sum(len(t.encode("utf-8")) for t in texts)

        out = tmp / "packed"
        t0 = time.perf_counter()
        run([kiln, "data", "pack", "--corpus", corpus, "--tokenizer", tok_path, "--seq-len", str(args.seq_len),
             "--fim-rate", "0", "--val-fraction", "0", "--out", str(out)])
        kw = time.perf_counter() - t0
        meta = json.load(open(out / "meta.json"))

        tok = tokenizers.Tokenizer.from_file(tok_path)
        t0 = time.perf_counter()
        enc = tok.encode_batch(texts, add_special_tokens=False)
        pw = time.perf_counter() - t0
        ptokens = sum(len(e.ids) for e in enc)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {cpu}, {os.cpu_count()} cores; python tokenizers {tokenizers.__version__}")
    print(f"corpus: {len(texts)} samples, {nbytes / 1e6:.1f} MB; tokenizer {tok_path}")
    ktokens = meta["train"]["tokens"] + meta["val"]["tokens"]
    docs = meta["train"]["documents"] + meta["val"]["documents"]
    print(f"  kiln data pack:          {kw:7.2f} s wall, {nbytes / 1e6 / kw:8.2f} MB/s  "
          f"({ktokens} tokens = {ktokens - 2 * docs} + BOS/EOS for {docs} documents)")
    print(f"  tokenizers encode_batch: {pw:7.2f} s wall, {nbytes / 1e6 / pw:8.2f} MB/s  ({ptokens} tokens)")
    print(f"  ratio (kiln / tokenizers, {os.cpu_count()} cores): {pw / kw:.2f}x")
    if ktokens - 2 * docs != ptokens:
        # kiln never lets text produce a control id: a literal role-token string in a file (e.g.
        # `<pad>` in a tokenizer's tests) is encoded as text, where encode_batch gives its one id.
        roles = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜fim▁hole｜>", "<｜fim▁begin｜>",
                 "<｜fim▁end｜>", "<pad>", "<|User|>", "<|Assistant|>", "<|EOT|>"]
        literal = sum(t.count(r) for t in texts for r in roles)
        print(f"  token counts differ by {ktokens - 2 * docs - ptokens}: the texts hold {literal} literal "
              f"role-token strings, which kiln encodes as text (kiln-data encode.rs)")


if __name__ == "__main__":
    main()
