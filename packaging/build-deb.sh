#!/usr/bin/env bash
# Builds target/debian/qga_*.deb from the release build: generates the man
# page and completions from the CLI definition, then runs cargo-deb.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || { echo "build-deb.sh: cargo install cargo-deb first" >&2; exit 1; }
cargo build --release -p qga
mkdir -p target/packaging
./target/release/qga manpage | gzip -9n > target/packaging/qga.8.gz
./target/release/qga completions bash > target/packaging/qga.bash
./target/release/qga completions zsh > target/packaging/_qga
cargo deb -p qga --no-build --no-strip
