#!/usr/bin/env python3
"""Expected greedy ids of llama.cpp on GGUF files that `kiln quantize` makes from the committed
tiny-llama fixture (tests/fixtures/gguf-greedy/expected.json).

kiln's test (crates/kiln-infer/tests/gguf.rs) quantizes the same fixture the same way, decodes the
same prompts greedily through its own GGUF runtime and must produce these ids: the file kiln
writes is read by llama.cpp as kiln reads it, and both runtimes compute the same model. CI needs
no llama.cpp: only this script does (benches/build_llama_cpp.sh builds it, AMX off).

Run from the repository root: python3 scripts/make_gguf_greedy_fixture.py
(KILN=path/to/kiln uses that binary instead of building one).
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests/fixtures/tiny-llama")
OUT = os.path.join(ROOT, "tests/fixtures/gguf-greedy")
TYPES = ["f32", "f16", "q8_0", "q4_0"]
# A wider random model (rows of 256 and 512 values), so that the k-quants are used and not their
# fallbacks: `kiln model init --config wide-config.json --seed 7` with tiny-llama's tokenizer.
WIDE_CONFIG = os.path.join(OUT, "wide-config.json")
WIDE_SEED = 7
WIDE_TYPES = ["q4_k_m", "q8_0"]
NEW_TOKENS = 32


def main():
    bin_dir = subprocess.run(["bash", os.path.join(ROOT, "benches/build_llama_cpp.sh")], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    peer = os.path.join(os.path.dirname(bin_dir), "src")
    greedy = os.path.join(bin_dir, "llama_cpp_greedy")
    if not os.path.exists(greedy):
        build = os.path.join(os.path.dirname(bin_dir), "build")
        src = [os.path.join(peer, d, "vendor/llama.cpp") for d in os.listdir(peer)][0]
        libs = [os.path.join(build, p) for p in ["src/libllama.a", "ggml/src/libggml.a", "ggml/src/libggml-cpu.a", "ggml/src/libggml-base.a"]]
        subprocess.run(["g++", "-O2", "-std=c++17", f"-I{src}/include", f"-I{src}/ggml/include", os.path.join(ROOT, "scripts/llama_cpp_greedy.cpp"), *libs, "-lpthread", "-fopenmp", "-o", greedy], check=True)
    kiln = os.environ.get("KILN")
    if not kiln:
        subprocess.run(["cargo", "build", "--quiet", "-p", "kiln-cli"], check=True, cwd=ROOT)
        kiln = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "kiln")
    expected = json.load(open(os.path.join(FIXTURE, "expected.json")))
    prompts = [p["input_ids"] for p in expected["prompts"]]
    # "ids": llama.cpp with an f32 KV cache; "ids_f16_cache": with its default f16 cache.
    out = {"fixture": "tests/fixtures/tiny-llama", "new_tokens": NEW_TOKENS, "prompts": prompts, "ids": {}, "ids_f16_cache": {}}
    out["wide"] = {"config": "tests/fixtures/gguf-greedy/wide-config.json", "seed": WIDE_SEED, "ids": {}, "ids_f16_cache": {}}
    with tempfile.TemporaryDirectory() as tmp:
        wide = os.path.join(tmp, "wide")
        subprocess.run([kiln, "model", "init", "--config", WIDE_CONFIG, "--seed", str(WIDE_SEED), "--tokenizer", FIXTURE, "--out", wide], check=True)
        for model, types, into in [(FIXTURE, TYPES, out), (wide, WIDE_TYPES, out["wide"])]:
            for ty in types:
                gguf = os.path.join(tmp, f"model-{ty}.gguf")
                subprocess.run([kiln, "quantize", model, "--type", ty, "--out", gguf], check=True)
                for kv, key in [("f32", "ids"), ("f16", "ids_f16_cache")]:
                    rows = []
                    for ids in prompts:
                        env = dict(os.environ, KV_TYPE=kv)
                        r = subprocess.run([greedy, gguf, str(NEW_TOKENS), *map(str, ids)], check=True, capture_output=True, text=True, env=env)
                        rows.append([int(x) for x in r.stdout.split()])
                    into[key][ty] = rows
                    print(os.path.basename(model), ty, kv, rows[0][:8], file=sys.stderr)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
