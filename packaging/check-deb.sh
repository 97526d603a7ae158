#!/usr/bin/env bash
# Builds the .deb and checks it: its file list, that it installs and removes
# cleanly, and that the installed agent's --help, man page and version work.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/build-deb.sh >/dev/null 2>&1 || { echo "check-deb: build failed" >&2; bash packaging/build-deb.sh; exit 1; }
deb=$(ls -t target/debian/qga_*.deb | head -1)
listing=$(dpkg-deb -c "$deb")
for path in ./usr/sbin/qga ./lib/systemd/system/qga.service ./lib/systemd/system/qga-vsock.socket \
            ./lib/udev/rules.d/60-qga.rules ./usr/share/man/man8/qga.8.gz \
            ./usr/share/bash-completion/completions/qga ./usr/share/doc/qga/README.md; do
    grep -q " $path\$" <<<"$listing" || { echo "check-deb: $deb lacks $path" >&2; exit 1; }
done
dpkg-deb -f "$deb" Conflicts | grep -q qemu-guest-agent || { echo "check-deb: no Conflicts: qemu-guest-agent" >&2; exit 1; }
# Render the man page and the help as an operator would see them.
manpage=$(zcat target/packaging/qga.8.gz | MANWIDTH=80 man -l -)
grep -q -- "--block-rpcs" <<<"$manpage" || { echo "check-deb: man page does not render" >&2; exit 1; }
help=$(./target/release/qga --help)
grep -q "Channel:" <<<"$help" || { echo "check-deb: --help lacks its groups" >&2; exit 1; }
audit=$(QGA_CONF=/nonexistent ./target/release/qga policy audit)
grep -q "^guest-ping " <<<"$audit" || { echo "check-deb: policy audit does not render" >&2; exit 1; }
echo "check-deb: package ok ($(grep -c . <<<"$listing") entries)"

# Install into, then remove from, an empty root: every file goes in, and
# nothing is left behind.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status"
dpkg --root="$root" --force-depends --force-script-chrootless -i "$deb" >/dev/null 2>&1
[ -x "$root/usr/sbin/qga" ] || { echo "check-deb: install left no /usr/sbin/qga" >&2; exit 1; }
"$root/usr/sbin/qga" -V | grep -q '^qga ' || { echo "check-deb: installed qga does not run" >&2; exit 1; }
dpkg --root="$root" --force-script-chrootless --purge qga >/dev/null
leftover=$(find "$root" -type f ! -path "$root/var/lib/dpkg/*" ! -path "$root/var/log/*" | head -5)
[ -z "$leftover" ] || { echo "check-deb: files left after purge: $leftover" >&2; exit 1; }
echo "check-deb: installs and purges cleanly"

# The client's package: its files, no dependency on the agent or wasmtime,
# its man page and help, install and purge.
client_deb=$(ls -t target/debian/qga-client_*.deb | head -1)
client_listing=$(dpkg-deb -c "$client_deb")
for path in ./usr/bin/qga-client ./usr/share/man/man1/qga-client.1.gz \
            ./usr/share/bash-completion/completions/qga-client ./usr/share/zsh/vendor-completions/_qga-client; do
    grep -q " $path\$" <<<"$client_listing" || { echo "check-deb: $client_deb lacks $path" >&2; exit 1; }
done
if dpkg-deb -f "$client_deb" Depends | grep -qw qga; then
    echo "check-deb: qga-client depends on the agent" >&2; exit 1
fi
client_manpage=$(zcat target/packaging/qga-client.1.gz | MANWIDTH=80 man -l -)
grep -q -- "--vsock" <<<"$client_manpage" || { echo "check-deb: qga-client's man page does not render" >&2; exit 1; }
client_root=$(mktemp -d)
trap 'rm -rf "$root" "$client_root"' EXIT
mkdir -p "$client_root/var/lib/dpkg/info" "$client_root/var/lib/dpkg/updates"
touch "$client_root/var/lib/dpkg/status"
dpkg --root="$client_root" --force-depends --force-script-chrootless -i "$client_deb" >/dev/null 2>&1
"$client_root/usr/bin/qga-client" --version | grep -q '^qga-client ' || { echo "check-deb: installed qga-client does not run" >&2; exit 1; }
dpkg --root="$client_root" --force-script-chrootless --purge qga-client >/dev/null
leftover=$(find "$client_root" -type f ! -path "$client_root/var/lib/dpkg/*" ! -path "$client_root/var/log/*" | head -5)
[ -z "$leftover" ] || { echo "check-deb: files left after purging qga-client: $leftover" >&2; exit 1; }
echo "check-deb: qga-client package ok ($(grep -c . <<<"$client_listing") entries, $(stat -c %s target/release/qga-client) bytes stripped), installs and purges cleanly"
