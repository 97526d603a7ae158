#!/usr/bin/env bash
# Runs every test of the workspace, first installing what the tests need on
# a fresh Debian machine: the reference qemu-guest-agent 7.2 (the wire
# fixtures are replayed against it), qemu, busybox-static, e2fsprogs and
# libvirt for the real-VM tests, and the wasm32-wasip2 Rust target.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
[ -x /usr/sbin/qemu-ga ] || packages+=(qemu-guest-agent)
command -v systemd-socket-activate >/dev/null || packages+=(systemd)
# tests/storage.rs: ext4 images on loop devices
command -v losetup >/dev/null || packages+=(mount)
command -v fsfreeze >/dev/null || packages+=(util-linux)
command -v man >/dev/null || packages+=(man-db)
# The real-VM tests (tests/vm.rs, tests/libvirt.rs; harness in tests/vm/).
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
command -v qemu-system-x86_64 >/dev/null || packages+=(qemu-system-x86)
installed busybox-static || packages+=(busybox-static)
command -v mkfs.ext4 >/dev/null || packages+=(e2fsprogs)
command -v python3 >/dev/null || packages+=(python3)
command -v bc >/dev/null || packages+=(bc)
command -v ss >/dev/null || packages+=(iproute2)
command -v ssh-keygen >/dev/null || packages+=(openssh-client)
for p in libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu; do
    installed "$p" || packages+=("$p")
done
# The guest kernel is fetched with `apt-get download` (tests/vm/qgavm.py):
# that needs the apt lists unless a .deb is already cached.
need_update=0
if ! ls "${QGA_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qga-vm}"/linux-image-*-cloud-amd64_*.deb >/dev/null 2>&1 &&
    ! apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; then
    need_update=1
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if [ ${#packages[@]} -gt 0 ] || [ $need_update = 1 ]; then
    $sudo apt-get update -qq
fi
if [ ${#packages[@]} -gt 0 ]; then
    echo "tests/run-all.sh: installing ${packages[*]}" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "tests/run-all.sh: adding the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi

# The second reference, qemu-ga 10.0 (tests/qemu_ga_10.rs and the -D, -c,
# fsinfo comparisons): Debian 13's package unpacked into a private directory
# by ../shared/tools/qemu-ga-10.sh, without installing it (the tests run the
# same script themselves; this fetches it once, up front).
bash ../shared/tools/qemu-ga-10.sh >/dev/null

if ! command -v cargo-deb >/dev/null; then
    echo "tests/run-all.sh: installing cargo-deb (for the package check)" >&2
    cargo install --locked cargo-deb --version 3.8.0
fi

status=0
# The handlers' own logic, natively (their wasm builds are checked by the
# host's build script and exercised by the host tests).
cargo test --release --manifest-path handlers/Cargo.toml --workspace || status=1
cargo test --release --workspace --no-fail-fast "$@" || status=1
# The README's command that runs the agent, as written.
bash tests/readme-run.sh || status=1
# The Debian package: contents, install/purge, man page, --help.
bash packaging/check-deb.sh || status=1
exit $status
