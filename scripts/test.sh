#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian machine of
# this kind, then checks formatting and lints and runs every test, including the docker
# drill (the AAA drill and the failure modes Docker can express, in real containers).
#
# The tests reach only loopback and the containers they create; nothing here contacts
# Hetzner, Telegram or GitHub.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v sha256sum >/dev/null 2>&1 || need_apt+=(coreutils)
# real/tests/ssh_loopback.rs starts its own sshd on 127.0.0.1 (its own config, keys and
# port; a system sshd the package may start on port 22 plays no part) and cuts traffic to
# 127.0.0.97-99 with iptables.
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v iptables >/dev/null 2>&1 || need_apt+=(iptables)
# etcd is the lease store of the fenced profile on real processes (docker and loopback).
[ -x /usr/bin/etcd ] || need_apt+=(etcd-server)
if [ "${#need_apt[@]}" -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "== installing: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== the static lifeboat for the docker node image (glibc, crt-static)"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --locked --quiet --bin lifeboat --target x86_64-unknown-linux-gnu
target_dir="${CARGO_TARGET_DIR:-target}"
export LIFEBOAT_NODE_BINARY="$PWD/$target_dir/x86_64-unknown-linux-gnu/debug/lifeboat"
case "$target_dir" in /*) LIFEBOAT_NODE_BINARY="$target_dir/x86_64-unknown-linux-gnu/debug/lifeboat";; esac
echo "== cargo test (release: the simulations are CPU-bound; tests/docker.rs runs the docker drills)"
cargo test --workspace --release --locked
echo "== the mutants the checkers must catch (docs/mutants.md; built only with the feature)"
cargo test --release --locked -p lifeboat-sim --features mutants --test mutants
echo "== the AAA drill on the simulated backend"
out="$(mktemp -d)"
cargo run --release --locked --quiet -- drill scenarios/aaa-drill.toml --out "$out" --quiet
(cd "$out"/aaa-drill-fenced-* && sha256sum -c --quiet sha256.txt)
echo "== evidence bundle verifies with sha256sum -c"
