#!/usr/bin/env bash
# Runs every test of the workspace, first installing what the tests need on
# a fresh Debian machine: the reference qemu-guest-agent 7.2 (the wire
# fixtures are replayed against it) and the wasm32-wasip2 Rust target.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
[ -x /usr/sbin/qemu-ga ] || packages+=(qemu-guest-agent)
command -v systemd-socket-activate >/dev/null || packages+=(systemd)
# tests/storage.rs: ext4 images on loop devices
command -v mkfs.ext4 >/dev/null || packages+=(e2fsprogs)
command -v losetup >/dev/null || packages+=(mount)
command -v fsfreeze >/dev/null || packages+=(util-linux)
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

exec cargo test --release --workspace "$@"
