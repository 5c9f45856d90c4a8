#!/usr/bin/env bash
# The big robustness run of issue 19: mutated scenario files through the parser and a
# bounded fast-engine run, mutated bundles through `snapshot verify` and mutated
# bootstrap manifests through `manifest check`. No input may panic, run past 20 s of CPU or
# allocate past 512 MiB (tests/robustness.rs); a failing input is written to
# target/robustness-failures/.
#
#   scripts/robustness.sh                 # 100,000 scenarios, 10,000 bundles and manifests
#   SCENARIOS=1000 BUNDLES=300 scripts/robustness.sh
#   SEED=7 scripts/robustness.sh          # another stream of mutations
#
# Measured counts and times go into docs/robustness.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export LIFEBOAT_ROBUSTNESS_SCENARIOS="${SCENARIOS:-100000}"
export LIFEBOAT_ROBUSTNESS_BUNDLES="${BUNDLES:-10000}"
export LIFEBOAT_ROBUSTNESS_SEED="${SEED:-19}"
exec nice cargo test --release --test robustness -- --nocapture --test-threads 1
