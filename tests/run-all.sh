#!/usr/bin/env bash
# Runs every test of the workspace, first installing what the tests need on
# a fresh Debian machine: the reference qemu-guest-agent 7.2 (the wire
# fixtures are replayed against it) and the wasm32-wasip2 Rust target.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
[ -x /usr/sbin/qemu-ga ] || packages+=(qemu-guest-agent)
command -v systemd-socket-activate >/dev/null || packages+=(systemd)
command -v man >/dev/null || packages+=(man-db)
if [ ${#packages[@]} -gt 0 ]; then
    echo "tests/run-all.sh: installing ${packages[*]}" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "tests/run-all.sh: adding the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi

if ! command -v cargo-deb >/dev/null; then
    echo "tests/run-all.sh: installing cargo-deb (for the package check)" >&2
    cargo install --locked cargo-deb --version 3.8.0
fi

status=0
# The handlers' own logic, natively (their wasm builds are checked by the
# host's build script and exercised by the host tests).
cargo test --release --manifest-path handlers/Cargo.toml --workspace || status=1
cargo test --release --workspace --no-fail-fast "$@" || status=1
# The Debian package: contents, install/purge, man page, --help.
bash packaging/check-deb.sh || status=1
exit $status
