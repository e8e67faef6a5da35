#!/usr/bin/env bash
# Fuzz kiln-gguf's reader for SECONDS (default 600): random-seed batches of mutated real GGUF
# files (crates/kiln-gguf/tests/fuzz.rs) until the deadline, then the cases per second. A failure
# prints the seed, the base file and the shrunk mutation list; rerun one seed's quick pass with
#   KILN_GGUF_FUZZ_SEED=SEED cargo test -p kiln-gguf --test fuzz -- --nocapture
# Release build: the reader's speed, not the test profile's (a few small dependencies only).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
  echo "usage: scripts/fuzz_gguf.sh [SECONDS]   (a whole number above 0; default 600)" >&2
  exit 2
fi
KILN_GGUF_FUZZ_SECS="$secs" exec cargo test --release -p kiln-gguf --test fuzz -- --nocapture
