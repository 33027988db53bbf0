#!/usr/bin/env bash
# Coverage-guided fuzzing of the decoders and verifiers that face peers (cargo-fuzz, libFuzzer):
#   ./scripts/fuzz.sh [TARGET|all] [SECONDS]     (default: all targets, 60 s each)
# Targets: node_codec, range_proof, change_proof, request, node_diff (see fuzz/checks.rs). Needs a nightly
# toolchain (installed with rustup when missing) and cargo-fuzz (installed when missing). New
# inputs that reach new code are added to fuzz/corpus/TARGET; a crash leaves its input in
# fuzz/artifacts/TARGET and fails the script. The seed corpus is replayed on stable by the test
# suite (tests/it/fuzz_corpus.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-all}"
seconds="${2:-60}"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# Its own build directory: nightly builds share nothing with the stable cache.
export CARGO_TARGET_DIR="${ARBOR_FUZZ_TARGET_DIR:-$HOME/.cache/arbor/fuzz-target}"
if [ "$target" = all ]; then
  targets=(node_codec range_proof change_proof request node_diff)
else
  targets=("$target")
fi
for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${seconds}s"
  cargo +nightly fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
done
