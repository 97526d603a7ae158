#!/usr/bin/env bash
# Runs every test of the workspace, first installing what the tests need on
# a fresh Debian machine: the reference qemu-guest-agent 7.2 (the wire
# fixtures are replayed against it) and the wasm32-wasip2 Rust target.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
[ -x /usr/sbin/qemu-ga ] || packages+=(qemu-guest-agent)
command -v systemd-socket-activate >/dev/null || packages+=(systemd)
# the VM tests (tests/vm_system.rs): qemu TCG and the guest's busybox
command -v qemu-system-x86_64 >/dev/null || packages+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || packages+=(busybox-static)
command -v mkfs.ext4 >/dev/null || packages+=(e2fsprogs)
# the VM image's kernel is fetched with apt-get download (tests/vm/README.md): it needs the lists
kernel_cached=$(ls "${QGA_VM_CACHE:-$HOME/.cache/qga-vm}"/linux-image-*-cloud-amd64_*.deb 2>/dev/null | head -1 || true)
if [ -z "$kernel_cached" ] && [ ${#packages[@]} -eq 0 ] && [ -z "${QGA_VM_KERNEL_DEB:-}" ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
fi
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
