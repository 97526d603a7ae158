#!/bin/sh
# run-vm.sh OUTDIR [--run-dir DIR] [--agent PATH] [--agent-args ARGS] [--mount]
#           [--isa-serial] [--fresh-disk] [--background [--wait-ready S]] [--timeout S]
# Boots the image under qemu TCG; sockets/logs in RUN_DIR.  See README.md.
exec python3 "$(dirname "$0")/qgavm.py" run "$@"
