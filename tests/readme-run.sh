#!/usr/bin/env bash
# The README's command that runs the agent, run as written: it must start
# the agent on its unix socket and answer guest-ping.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=$(grep -E '^    cargo run .*unix-listen' README.md | head -1 | sed 's/^ *//')
[ -n "$cmd" ] || { echo "readme-run: no run command in README.md" >&2; exit 1; }
sock=$(sed -E 's/.* -p ([^ ]+).*/\1/' <<<"$cmd")
state=$(sed -E 's/.* -t ([^ ]+).*/\1/' <<<"$cmd")
rm -rf "$sock" "$state"
# Build first, as `cargo run` would (the test build links other features of
# wasmtime, so this may compile): the wait below is for the agent alone.
build=$(sed -E 's/^cargo run /cargo build /; s/ -- .*//' <<<"$cmd")
bash -c "$build"
bash -c "exec $cmd" 2>/tmp/readme-run.log &
agent=$!
trap 'kill $agent 2>/dev/null; wait $agent 2>/dev/null; rm -rf "$sock" "$state"' EXIT
for _ in $(seq 600); do
    [ -S "$sock" ] && break
    kill -0 $agent 2>/dev/null || { cat /tmp/readme-run.log >&2; echo "readme-run: the agent exited" >&2; exit 1; }
    sleep 0.1
done
reply=$(python3 - "$sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b'{"execute": "guest-ping"}\n')
print(s.makefile("rb").readline().decode().strip())
PY
)
if [ "$reply" != '{"return": {}}' ]; then
    echo "readme-run: '$cmd' answered: $reply" >&2
    exit 1
fi
echo "readme-run: '$cmd' answers guest-ping"
