#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian machine of
# this kind, then checks formatting and lints and runs every test.
#
# The tests reach only loopback; nothing here contacts Hetzner, Telegram or GitHub.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v sha256sum >/dev/null 2>&1 || need_apt+=(coreutils)
if [ "${#need_apt[@]}" -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "== installing: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test (release: the simulations are CPU-bound)"
cargo test --workspace --release --locked
echo "== the AAA drill on the simulated backend"
out="$(mktemp -d)"
cargo run --release --locked --quiet -- drill scenarios/aaa-drill.toml --out "$out" --quiet
(cd "$out"/aaa-drill-fenced-* && sha256sum -c --quiet sha256.txt)
echo "== evidence bundle verifies with sha256sum -c"
