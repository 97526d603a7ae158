#!/bin/bash
# libvirt-run.sh OUTDIR [WORKDIR]
#
# Boots the qgavm image (built by build-image.sh) as a libvirt TCG domain
# (type 'qemu', qemu:///system as root) and runs the virsh commands that talk
# to the guest agent, printing each result.  Starts virtlogd/libvirtd itself
# when they are not running (no systemd needed) and stops only what it started.
#
# env: QGA_VM_AGENT       guest path of the agent to start (default: the build's)
#      QGA_VM_AGENT_ARGS  agent arguments (default: the build's)
#      QGA_VM_TIMEOUT     seconds for the whole run (default 600)
#      QGA_VM_KEEP=1      leave the domain defined and running
#      QGA_VM_VIRSH_STEPS=FILE  run these virsh commands instead of the built-in
#                         list: one per line, virsh arguments (sh words), @DOM@
#                         stands for the domain, @WORK@ for WORKDIR; a line
#                         `shutdown @DOM@ --mode agent` also waits for "shut off"
# exit status: number of virsh commands that failed (0 = all worked)
set -u
if [ "${1:-}" = "--exec-without-kvm" ]; then
  # Internal: run "$@" in a private mount namespace whose /dev has no kvm node.
  # libvirt 9.0 sees /dev/kvm, probes with accel=kvm:tcg, caches capabilities
  # without KVM, then finds "/dev/kvm has changed" on every lookup and re-probes
  # qemu (~4 s each, ~70 s per `virsh define`).  Without the node it probes once.
  shift
  set -e
  D=$(mktemp -d /tmp/qgavm-dev.XXXXXX)
  mount -t tmpfs -o mode=755 tmpfs "$D"
  for n in null zero full random urandom tty ptmx; do
    touch "$D/$n"; mount --bind "/dev/$n" "$D/$n"
  done
  for d in pts shm mqueue hugepages net; do
    if [ -d "/dev/$d" ]; then mkdir -p "$D/$d"; mount --rbind "/dev/$d" "$D/$d"; fi
  done
  for l in fd stdin stdout stderr; do [ -L "/dev/$l" ] && cp -a "/dev/$l" "$D/$l"; done
  mount --move "$D" /dev
  rmdir "$D" 2>/dev/null || true
  exec "$@"
fi
# the whole script is bounded: re-run self under timeout(1)
if [ -z "${QGA_VM_UNDER_TIMEOUT:-}" ]; then
  QGA_VM_UNDER_TIMEOUT=1 exec timeout -k 30 "${QGA_VM_TIMEOUT:-600}" "$0" "$@"
fi
OUTDIR=$(realpath "${1:?usage: libvirt-run.sh OUTDIR [WORKDIR]}")
WORK=$(realpath -m "${2:-$OUTDIR/libvirt}")
HERE=$(dirname "$(realpath "$0")")
TIMEOUT=${QGA_VM_TIMEOUT:-600}
NAME=qgavm-$$
URI=qemu:///system
mkdir -p "$WORK"
rm -f "$WORK/console.log"
V() { timeout 120 virsh -q -c "$URI" "$@"; }
STARTED=()

cleanup() {
  if [ "${QGA_VM_KEEP:-0}" != 1 ]; then
    V destroy "$NAME" >/dev/null 2>&1
    V undefine "$NAME" >/dev/null 2>&1
  fi
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null; done
}
trap cleanup EXIT
trap 'echo "libvirt-run: terminated (timeout ${TIMEOUT}s?)" >&2; exit 143' TERM INT

start_daemon() {  # name
  if ! pgrep -x "$1" >/dev/null; then
    local wrap=()
    if [ "$1" = libvirtd ] && [ -e /dev/kvm ] && [ "${QGA_VM_LIBVIRT_HIDE_KVM:-1}" = 1 ]; then
      wrap=(unshare -m --propagation private "$0" --exec-without-kvm)
    fi
    LIBVIRT_LOG_FILTERS="${QGA_VM_LIBVIRT_LOG_FILTERS:-3:*}" LIBVIRT_LOG_OUTPUTS="1:file:$WORK/$1.log" \
      timeout "$((TIMEOUT + 60))" "${wrap[@]}" "$1" >>"$WORK/$1.log" 2>&1 &
    STARTED+=("$!")
    echo "libvirt-run: started $1 (log $WORK/$1.log)"
  fi
}
start_daemon virtlogd
start_daemon libvirtd
for _ in $(seq 1 50); do V version >/dev/null 2>&1 && break; sleep 0.2; done

cp --sparse=always "$OUTDIR/disk.img" "$WORK/disk.img"
CMDLINE="console=ttyS0 panic=-1 loglevel=4 net.ifnames=0 qgavm.mount=1"
[ -n "${QGA_VM_AGENT:-}" ] && CMDLINE="$CMDLINE qgavm.agent=$QGA_VM_AGENT"
[ -n "${QGA_VM_AGENT_ARGS:-}" ] && CMDLINE="$CMDLINE qgavm.args=$(printf %s "$QGA_VM_AGENT_ARGS" | base64 -w0)"
sed -e "s|@NAME@|$NAME|; s|@KERNEL@|$OUTDIR/vmlinuz|; s|@INITRD@|$OUTDIR/initrd.img|" \
    -e "s|@DISK@|$WORK/disk.img|; s|@CONSOLE_LOG@|$WORK/console.log|; s|@CMDLINE@|$CMDLINE|" \
    "$HERE/libvirt-domain.xml" >"$WORK/domain.xml"
say() { echo "libvirt-run: [${SECONDS}s] $*"; }
say "defining $NAME"
V define "$WORK/domain.xml" >/dev/null || exit 100
say "starting $NAME"
T0=$(date +%s.%N)
V start "$NAME" || exit 101
# ready = the agent answers through libvirt
ok=0
for _ in $(seq 1 120); do
  if V qemu-agent-command "$NAME" --timeout 2 '{"execute":"guest-ping"}' >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.5
done
T1=$(date +%s.%N)
if [ $ok != 1 ]; then echo "libvirt-run: agent never answered; console:"; cat "$WORK/console.log"; exit 102; fi
say "domain $NAME agent ready $(echo "$T1 - $T0" | bc) s after virsh start"

FAIL=0
run() {  # virsh args...
  echo "### virsh $*"
  local t0 rc
  t0=$(date +%s.%N)
  timeout 120 virsh -c "$URI" "$@" 2>&1
  rc=$?
  echo "### rc=$rc ($(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s)"
  [ $rc = 0 ] || FAIL=$((FAIL + 1))
}
agent() { V qemu-agent-command "$NAME" "$1" 2>&1; }
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGr0Yf0+qgavm+test+key+0000000000000000000 qgatest@qgavm" >"$WORK/keys"

if [ -n "${QGA_VM_VIRSH_STEPS:-}" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue;; esac
    line=${line//@DOM@/$NAME}
    line=${line//@WORK@/$WORK}
    eval "set -- $line"
    run "$@"
    if [ "${1:-}" = shutdown ]; then
      state=""
      for _ in $(seq 1 60); do
        state=$(V domstate "$NAME" 2>&1)
        [ "$state" = "shut off" ] && break
        sleep 0.5
      done
      echo "### domstate: $state"
      [ "$state" = "shut off" ] || FAIL=$((FAIL + 1))
    fi
  done <"$QGA_VM_VIRSH_STEPS"
  say "$FAIL failed"
  exit $FAIL
fi
run guestinfo "$NAME"
run domfsinfo "$NAME"
run domifaddr "$NAME" --source agent
run domfsfreeze "$NAME"
echo "    agent says: $(agent '{"execute":"guest-fsfreeze-status"}')"
run domfsthaw "$NAME"
echo "    agent says: $(agent '{"execute":"guest-fsfreeze-status"}')"
run domfstrim "$NAME"
run domtime "$NAME"
run domtime "$NAME" --sync    # guest reloads its clock from the RTC (hwclock -s)
run domtime "$NAME"
run domtime "$NAME" --time 1700000000
run domtime "$NAME"
run set-user-password "$NAME" qgatest 's3cret-Pw'
run set-user-sshkeys "$NAME" qgatest --file "$WORK/keys"
echo "    agent says: $(agent '{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"qgatest"}}')"
run set-user-sshkeys "$NAME" qgatest --remove --file "$WORK/keys"
echo "    agent says: $(agent '{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"qgatest"}}')"
run guestvcpus "$NAME"
run guestvcpus "$NAME" --cpulist 1 --disable
run guestvcpus "$NAME"
run guestvcpus "$NAME" --cpulist 1 --enable
run guestvcpus "$NAME"
if [ "${QGA_VM_KEEP:-0}" != 1 ]; then
  run shutdown "$NAME" --mode agent
  state=""
  for _ in $(seq 1 60); do
    state=$(V domstate "$NAME" 2>&1)
    [ "$state" = "shut off" ] && break
    sleep 0.5
  done
  say "domstate after agent shutdown: $state"
  [ "$state" = "shut off" ] || FAIL=$((FAIL + 1))
fi
say "$FAIL failed"
exit $FAIL
