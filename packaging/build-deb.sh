#!/usr/bin/env bash
# Builds target/debian/qga_*.deb and target/debian/qga-client_*.deb from the
# `dist` build (the release profile with whole-program optimisation):
# generates the man pages and completions from the CLI
# definitions, then runs cargo-deb for each package.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || { echo "build-deb.sh: cargo install cargo-deb first" >&2; exit 1; }
cargo build --profile dist -p qga -p qga-client
mkdir -p target/packaging
./target/dist/qga manpage | gzip -9n > target/packaging/qga.8.gz
./target/dist/qga completions bash > target/packaging/qga.bash
./target/dist/qga completions zsh > target/packaging/_qga
cargo deb -p qga --no-build --no-strip --profile dist
./target/dist/qga-client manpage | gzip -9n > target/packaging/qga-client.1.gz
./target/dist/qga-client completions bash > target/packaging/qga-client.bash
./target/dist/qga-client completions zsh > target/packaging/_qga-client
cargo deb -p qga-client --no-build --no-strip --profile dist
