#!/bin/sh
# build-image.sh OUTDIR AGENT_BINARY [EXTRA_FILE[=GUEST_PATH]...] [-- qgavm.py build options]
# Writes OUTDIR/{vmlinuz,initrd.img,disk.img,image.json}.  See README.md.
exec python3 "$(dirname "$0")/qgavm.py" build "$@"
