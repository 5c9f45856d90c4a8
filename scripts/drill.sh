#!/usr/bin/env bash
# The README's main command: builds lifeboat and runs the AAA failover + restore drill on
# the simulated backend (the embedded default). Extra arguments go to `lifeboat drill`,
# e.g. `--profile opentrident-v1` to see where OpenTrident's protocol fails.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --locked --quiet -- drill scenarios/aaa-drill.toml "$@"
