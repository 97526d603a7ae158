#!/usr/bin/env python3
"""Build and boot a tiny Linux guest for end-to-end guest-agent tests.

    qgavm.py build OUTDIR AGENT_BINARY [EXTRA_FILE[=GUEST_PATH]...]
    qgavm.py run   OUTDIR [--run-dir DIR] [--agent PATH] [--agent-args ARGS] ...

Debian packages only: kernel + modules from linux-image-*-cloud-amd64 (.deb,
extracted, never installed), busybox-static, the agent and every shared
library ldd lists for it (glibc binaries run as they are), an ext4 data disk
made with `mkfs.ext4 -d`.  Python 3 standard library only.  See README.md.
"""
import argparse
import base64
import gzip
import io
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL_META = "linux-image-cloud-amd64"
# Modules loaded in the guest (their dependencies are added and ordered from
# each .ko's own modinfo "depends=", so no depmod is needed on the host).
WANTED_MODULES = [
    "virtio_pci", "virtio_console", "virtio_blk", "virtio_net",
    "vmw_vsock_virtio_transport",  # harmless without a vsock device
]
GUEST_IP = "10.0.2.15/24"
GUEST_GW = "10.0.2.2"
GUEST_MAC = "52:54:00:12:34:56"
VPORT_NAME = "org.qemu.guest_agent.0"
READY_MARKER = "QGA-VM-READY"
AGENT_MARKER = "QGA-VM-AGENT-START"


def log(msg):
    print("qgavm: " + msg, file=sys.stderr, flush=True)


def die(msg):
    log("error: " + msg)
    sys.exit(1)


# --------------------------------------------------------------------------
# kernel


def cache_dir():
    d = os.environ.get("QGA_VM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "qga-vm")
    os.makedirs(d, exist_ok=True)
    return d


def find_kernel_deb():
    """Return a path to a linux-image-<ver>-cloud-amd64 .deb.

    QGA_VM_KERNEL_DEB wins; else a .deb already in the cache; else
    `apt-get download` of the package the meta package depends on."""
    env = os.environ.get("QGA_VM_KERNEL_DEB")
    if env:
        if not os.path.isfile(env):
            die("QGA_VM_KERNEL_DEB=%s does not exist" % env)
        return env
    cdir = cache_dir()
    out = subprocess.run(["apt-cache", "depends", "--important", KERNEL_META],
                         capture_output=True, text=True)
    pkg = None
    for line in out.stdout.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\S+-cloud-amd64)\s*$", line)
        if m:
            pkg = m.group(1)
    if pkg is None:
        debs = sorted(f for f in os.listdir(cdir)
                      if re.match(r"linux-image-\d.*-cloud-amd64_.*\.deb$", f))
        if debs:
            return os.path.join(cdir, debs[-1])
        die("cannot resolve %s (run `apt-get update` first): %s"
            % (KERNEL_META, out.stderr.strip()))
    have = [f for f in os.listdir(cdir) if f.startswith(pkg + "_") and f.endswith(".deb")]
    if have:
        return os.path.join(cdir, sorted(have)[-1])
    log("downloading %s with apt-get download into %s" % (pkg, cdir))
    r = subprocess.run(["apt-get", "download", "-q", pkg], cwd=cdir,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    have = [f for f in os.listdir(cdir) if f.startswith(pkg + "_") and f.endswith(".deb")]
    if r.returncode != 0 or not have:
        die("apt-get download %s failed: %s" % (pkg, r.stderr.strip()))
    return os.path.join(cdir, sorted(have)[-1])


def extract_kernel(deb, workdir):
    x = os.path.join(workdir, "kernel-deb")
    subprocess.run(["dpkg-deb", "-x", deb, x], check=True)
    boot = os.path.join(x, "boot")
    vmlinuz = [f for f in os.listdir(boot) if f.startswith("vmlinuz-")]
    if len(vmlinuz) != 1:
        die("no single vmlinuz in %s" % deb)
    kver = vmlinuz[0][len("vmlinuz-"):]
    moddir = None
    for base in ("lib/modules", "usr/lib/modules"):
        p = os.path.join(x, base, kver)
        if os.path.isdir(p):
            moddir = p
    if moddir is None:
        die("no modules dir for %s in %s" % (kver, deb))
    return os.path.join(boot, vmlinuz[0]), moddir, kver


def modinfo_depends(path):
    with open(path, "rb") as f:
        data = f.read()
    m = re.search(rb"\x00depends=([^\x00]*)\x00", data)
    if not m or not m.group(1):
        return []
    return m.group(1).decode().split(",")


def resolve_modules(moddir, wanted):
    """Map module name -> relative .ko path, then order wanted + deps."""
    index = {}
    for root, _dirs, files in os.walk(moddir):
        for f in files:
            if f.endswith(".ko"):
                name = f[:-3].replace("-", "_")
                index[name] = os.path.relpath(os.path.join(root, f), moddir)
    order, seen = [], set()

    def visit(name, chain):
        name = name.replace("-", "_")
        if name in seen:
            return
        if name in chain:
            die("module dependency cycle: %s" % " -> ".join(chain + [name]))
        if name not in index:
            die("module %s not found in %s (built-in modules need no entry)" % (name, moddir))
        for dep in modinfo_depends(os.path.join(moddir, index[name])):
            visit(dep, chain + [name])
        seen.add(name)
        order.append(name)

    for w in wanted:
        visit(w, [])
    return [(n, index[n]) for n in order]


# --------------------------------------------------------------------------
# initramfs staging


def busybox_path():
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p) and not is_dynamic_elf(p):
            return p
    die("busybox-static is not installed (apt-get install busybox-static)")


def is_dynamic_elf(path):
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    if head != b"\x7fELF":
        return False
    r = subprocess.run(["ldd", path], capture_output=True, text=True)
    return r.returncode == 0 and "not a dynamic executable" not in (r.stdout + r.stderr)


def ldd_libs(path):
    r = subprocess.run(["ldd", path], capture_output=True, text=True)
    if r.returncode != 0:
        die("ldd %s failed: %s" % (path, r.stderr.strip()))
    libs = []
    for line in r.stdout.splitlines():
        line = line.strip()
        if "not found" in line:
            die("%s: missing library: %s" % (path, line))
        m = re.match(r"\S+\s+=>\s+(/\S+)\s+\(", line)
        if m:
            libs.append(m.group(1))
            continue
        m = re.match(r"(/\S+)\s+\(", line)  # the dynamic loader, exact path
        if m:
            libs.append(m.group(1))
    return libs


class Stage:
    """A root tree on disk plus synthetic entries (device nodes, ownership)."""

    def __init__(self, root):
        self.root = root
        self.owner = {}     # guest path -> (uid, gid)
        self.devices = []   # (guest path, mode, major, minor)

    def p(self, guest):
        return os.path.join(self.root, guest.lstrip("/"))

    def mkdir(self, guest, mode=0o755, owner=None):
        os.makedirs(self.p(guest), exist_ok=True)
        os.chmod(self.p(guest), mode)
        if owner:
            self.owner[guest] = owner

    def symlink(self, target, guest):
        os.makedirs(os.path.dirname(self.p(guest)), exist_ok=True)
        if os.path.lexists(self.p(guest)):
            os.unlink(self.p(guest))
        os.symlink(target, self.p(guest))

    def write(self, guest, text, mode=0o644):
        os.makedirs(os.path.dirname(self.p(guest)), exist_ok=True)
        if os.path.lexists(self.p(guest)):
            os.unlink(self.p(guest))  # never write through a busybox applet link
        with open(self.p(guest), "w") as f:
            f.write(text)
        os.chmod(self.p(guest), mode)

    def copy(self, src, guest, mode=None):
        # Parent dirs are created through the image's own symlinks (merged /usr).
        os.makedirs(os.path.dirname(self.p(guest)), exist_ok=True)
        dst = self.p(guest)
        if os.path.lexists(dst):
            os.unlink(dst)
        shutil.copyfile(src, dst)  # follows symlinks: a regular file at that path
        os.chmod(dst, mode if mode is not None else (os.stat(src).st_mode & 0o7777))

    def copy_with_libs(self, src, guest):
        self.copy(src, guest)
        if is_dynamic_elf(src):
            for lib in ldd_libs(src):
                if not os.path.exists(self.p(lib)):
                    self.copy(lib, lib)


def cpio_newc(stage, out_path):
    """Write the staged tree as a gzip'd newc cpio (uid/gid 0 unless set)."""
    ino = [1000]
    buf = io.BytesIO()

    def entry(name, mode, data=b"", uid=0, gid=0, nlink=1, rdev=(0, 0), mtime=0):
        ino[0] += 1
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            ino[0], mode, uid, gid, nlink, mtime, len(data), 0, 0,
            rdev[0], rdev[1], len(nb), 0))
        buf.write(hdr.encode() + nb)
        buf.write(b"\0" * ((4 - (110 + len(nb)) % 4) % 4))
        buf.write(data)
        buf.write(b"\0" * ((4 - len(data) % 4) % 4))

    root = stage.root
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        names = sorted(dirnames + filenames)
        if rel_dir != ".":
            g = "/" + rel_dir
            st = os.lstat(dirpath)
            uid, gid = stage.owner.get(g, (0, 0))
            entry(rel_dir, stat.S_IFDIR | (st.st_mode & 0o7777), uid=uid, gid=gid, nlink=2)
        for n in names:
            full = os.path.join(dirpath, n)
            rel = os.path.normpath(os.path.join(rel_dir, n))
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode):
                continue  # emitted when walked
            uid, gid = stage.owner.get("/" + rel, (0, 0))
            if stat.S_ISLNK(st.st_mode):
                entry(rel, stat.S_IFLNK | 0o777, os.readlink(full).encode(), uid, gid)
            else:
                with open(full, "rb") as f:
                    entry(rel, stat.S_IFREG | (st.st_mode & 0o7777), f.read(), uid, gid)
    for guest, mode, major, minor in stage.devices:
        entry(guest.lstrip("/"), mode, rdev=(major, minor))
    entry("TRAILER!!!", 0, nlink=1)
    with open(out_path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=6, mtime=0) as gz:
            gz.write(buf.getvalue())


# --------------------------------------------------------------------------
# guest scripts

RC_SYSINIT = r"""#!/bin/sh
# qgavm sysinit: mounts, modules, virtio-ports symlinks, network, user, marker.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/qemu /run/lock /mnt/data /var/log /var/lib
[ -d /sys/fs/cgroup ] || true
CMDLINE=$(cat /proc/cmdline)
arg() { for w in $CMDLINE; do case "$w" in "$1"=*) echo "${w#*=}"; return 0;; esac; done; return 1; }
echo "qgavm: loading modules"
while read -r m; do
  [ -n "$m" ] && insmod "/lib/modules/@KVER@/$m" || echo "qgavm: insmod $m failed"
done < /etc/qgavm/modules
# virtio-serial ports: what udev would do (/dev/virtio-ports/NAME -> ../vportXpY)
mkdir -p /dev/virtio-ports
i=0
while [ $i -lt 100 ]; do
  ls /sys/class/virtio-ports/*/name >/dev/null 2>&1 && break
  i=$((i+1)); usleep 50000
done
for n in /sys/class/virtio-ports/*/name; do
  [ -r "$n" ] || continue
  port=$(basename "$(dirname "$n")"); name=$(cat "$n")
  [ -n "$name" ] && ln -sf "../$port" "/dev/virtio-ports/$name"
  [ -c "/dev/$port" ] || echo "qgavm: /dev/$port missing"
done
ls -l /dev/virtio-ports/ 2>/dev/null | sed 's/^/qgavm: /'
hostname qgavm
ip link set lo up
i=0
while [ $i -lt 100 ] && [ ! -e /sys/class/net/eth0 ]; do i=$((i+1)); usleep 50000; done
if [ -e /sys/class/net/eth0 ]; then
  # No router-advertised (SLAAC) address: whether it has arrived yet would
  # depend on boot timing, and the tests compare address lists.
  echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_ra 2>/dev/null
  echo 0 > /proc/sys/net/ipv6/conf/eth0/autoconf 2>/dev/null
  # The link-local address valid at once, not after duplicate detection:
  # otherwise whether it is listed yet depends on boot timing too.
  echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad 2>/dev/null
  ip link set eth0 up
  ip addr add @GUEST_IP@ dev eth0
  ip route add default via @GUEST_GW@
fi
# data disk: /dev/vda (serial QGADISK01); mounted only with qgavm.mount=1
i=0
while [ $i -lt 100 ] && [ ! -b /dev/vda ]; do i=$((i+1)); usleep 50000; done
mkdir -p /dev/disk/by-id
if [ -b /dev/vda ]; then
  serial=$(cat /sys/block/vda/serial 2>/dev/null)
  ln -sf ../../vda "/dev/disk/by-id/virtio-${serial:-disk}"
  # what udev's database would hold, so libudev users (qemu-ga fsinfo/disks) see the serial
  mkdir -p /run/udev/data
  printf 'E:ID_SERIAL=%s\nE:ID_FS_TYPE=ext4\nS:disk/by-id/virtio-%s\n' "$serial" "$serial" \
    > "/run/udev/data/b$(cat /sys/block/vda/dev)"
fi
if [ "$(arg qgavm.mount)" = "1" ]; then
  mount -t ext4 -o discard /dev/vda /mnt/data && echo "qgavm: mounted /dev/vda on /mnt/data"
fi
hwclock -s -u 2>/dev/null
[ -x /etc/qgavm/rc.local ] && /etc/qgavm/rc.local
# qgavm.cpuwatch=1: once a second print the CPU time of every qga/qemu-ga
# process (USER_HZ ticks), and the state of each of its threads with the
# system call it is blocked in ("running" when it is not in one), so a
# host-side test can tell an idle agent from a spinning one by what its
# threads are doing, not by how much CPU a loaded host let it use.  Shell
# builtins only (no fork per process) to stay cheap.
if [ "$(arg qgavm.cpuwatch)" = "1" ]; then
  (
    while :; do
      read -r up _ < /proc/uptime
      for p in /proc/[0-9]*; do
        read -r c 2>/dev/null < "$p/comm" || continue
        case "$c" in
          qga|qemu-ga)
            read -r st 2>/dev/null < "$p/stat" || continue
            set -- ${st#*) }
            echo "QGA-VM-CPU $up ${p#/proc/} $c ${12} ${13}"
            for t in "$p"/task/[0-9]*; do
              read -r ts 2>/dev/null < "$t/stat" || continue
              read -r sc _ 2>/dev/null < "$t/syscall" || sc=none
              set -- ${ts#*) }
              echo "QGA-VM-TASK $up ${p#/proc/} $c ${t##*/} $1 $sc"
            done;;
        esac
      done
      sleep 1
    done
  ) > /dev/console 2>&1 &
fi
echo "@READY@ $(cat /proc/uptime)"
"""

RUN_AGENT = r"""#!/bin/sh
# Respawned by busybox init.  Agent + args: /etc/qgavm/agent.conf, overridden by
# qgavm.agent=PATH and qgavm.args=BASE64(args, sh-quoted) on the kernel cmdline.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
. /etc/qgavm/agent.conf
for w in $(cat /proc/cmdline); do
  case "$w" in
    qgavm.agent=*) AGENT="${w#*=}";;
    qgavm.args=*) AGENT_ARGS="$(echo "${w#*=}" | base64 -d)";;
  esac
done
echo "@AGENT_MARKER@ $AGENT $AGENT_ARGS"
eval "set -- $AGENT_ARGS"
"$AGENT" "$@"
rc=$?
echo "QGA-VM-AGENT-EXIT rc=$rc"
sleep 1
"""

CHPASSWD = r"""#!/bin/sh
# Minimal chpasswd (busybox-static has none): reads user:password lines;
# -e/--encrypted: already hashed; else hashed with sha512 by busybox mkpasswd.
enc=0
for a in "$@"; do case "$a" in -e|--encrypted) enc=1;; esac; done
rc=0
while IFS= read -r line || [ -n "$line" ]; do
  user="${line%%:*}"; pass="${line#*:}"
  if ! grep -q "^$user:" /etc/shadow; then
    echo "chpasswd: user '$user' does not exist" >&2; rc=1; continue
  fi
  if [ $enc = 1 ]; then hash="$pass"; else hash=$(mkpasswd -m sha512 "$pass") || { rc=1; continue; }; fi
  U="$user" H="$hash" awk -F: 'BEGIN{OFS=":"} $1==ENVIRON["U"]{$2=ENVIRON["H"]} {print}' \
    /etc/shadow > /etc/shadow.new && chmod 640 /etc/shadow.new && mv /etc/shadow.new /etc/shadow || rc=1
done
exit $rc
"""

SHUTDOWN = r"""#!/bin/sh
# /sbin/shutdown for qemu-ga (-P|-H|-h|-r [+0] [message]) on busybox init.
mode=poweroff
for a in "$@"; do case "$a" in -r) mode=reboot;; -H|-h) mode=halt;; -P) mode=poweroff;; esac; done
echo "QGA-VM-SHUTDOWN $mode" > /dev/console
sync
$mode
"""

# /sbin/poweroff, /sbin/halt, /sbin/reboot: qga runs the mode's own program
# when it is executable (qemu-ga 10's fallback for systems without systemd);
# the same console line as /sbin/shutdown's, then busybox's applet.
OWN_PROGRAM = r"""#!/bin/sh
echo "QGA-VM-SHUTDOWN @MODE@" > /dev/console
sync
exec /usr/bin/busybox @MODE@ "$@"
"""

INITTAB = """::sysinit:/etc/qgavm/rc.sysinit
::respawn:/etc/qgavm/run-agent
::ctrlaltdel:/bin/reboot
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
"""


def build(args):
    out = os.path.abspath(args.outdir)
    os.makedirs(out, exist_ok=True)
    agent = os.path.abspath(args.agent)
    if not os.access(agent, os.X_OK):
        die("agent %s is not an executable file" % agent)
    agent_guest = args.agent_path or (
        agent if agent.startswith(("/usr/", "/bin/", "/sbin/")) else "/usr/bin/" + os.path.basename(agent))

    work = tempfile.mkdtemp(prefix="qgavm-build-", dir=out)
    try:
        deb = find_kernel_deb()
        vmlinuz, moddir, kver = extract_kernel(deb, work)
        mods = resolve_modules(moddir, WANTED_MODULES)
        log("kernel %s from %s; modules: %s" % (kver, os.path.basename(deb),
                                                " ".join(n for n, _ in mods)))
        st = Stage(os.path.join(work, "root"))
        os.makedirs(st.root)
        # merged-/usr layout like Debian 12 so every ldd path resolves as on the host
        for d in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "usr/lib/x86_64-linux-gnu"):
            st.mkdir("/" + d)
        for d in ("bin", "sbin", "lib", "lib64"):
            st.symlink("usr/" + d, "/" + d)
        for d in ("dev", "proc", "sys", "tmp", "run", "root", "etc", "var", "mnt", "mnt/data",
                  "home", "etc/qgavm", "var/lib", "var/log"):
            st.mkdir("/" + d, 0o1777 if d == "tmp" else (0o700 if d == "root" else 0o755))
        st.symlink("../run", "/var/run")
        st.symlink("../run/lock", "/var/lock")
        st.mkdir("/home/qgatest", 0o755, owner=(1000, 1000))
        st.devices += [("/dev/console", stat.S_IFCHR | 0o600, 5, 1),
                       ("/dev/null", stat.S_IFCHR | 0o666, 1, 3)]
        # busybox + applet links
        bb = busybox_path()
        st.copy(bb, "/usr/bin/busybox", 0o755)
        applets = subprocess.run([bb, "--list-full"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for a in applets:
            g = "/" + a.replace("linuxrc", "usr/sbin/linuxrc")
            if not os.path.lexists(st.p(g)):
                st.symlink("/usr/bin/busybox", g)
        # modules
        for _name, rel in mods:
            st.copy(os.path.join(moddir, rel), "/lib/modules/%s/%s" % (kver, rel), 0o644)
        st.write("/etc/qgavm/modules", "".join(rel + "\n" for _n, rel in mods))
        # accounts: root + qgatest (uid/gid 1000, home /home/qgatest)
        st.write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                 "qgatest:x:1000:1000:qga test user:/home/qgatest:/bin/sh\n")
        st.write("/etc/shadow", "root:*:19000:0:99999:7:::\n"
                 "qgatest:!:19000:0:99999:7:::\n", 0o640)
        st.write("/etc/group", "root:x:0:\ntty:x:5:\nqgatest:x:1000:\n")
        st.write("/etc/gshadow", "root:*::\ntty:*::\nqgatest:!::\n", 0o640)
        st.write("/etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\n"
                 "hosts: files\n")
        st.write("/etc/hosts", "127.0.0.1 localhost\n10.0.2.15 qgavm\n")
        st.write("/etc/hostname", "qgavm\n")
        st.write("/etc/os-release", 'PRETTY_NAME="qgavm test guest (Debian 12 kernel)"\n'
                 'NAME="qgavm"\nID=qgavm\nID_LIKE=debian\nVERSION_ID="12"\n'
                 'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\n')
        st.write("/etc/fstab", "/dev/vda /mnt/data ext4 defaults,noauto 0 0\n")
        st.symlink("../proc/self/mounts", "/etc/mtab")
        # guest scripts
        st.write("/etc/inittab", INITTAB)
        st.write("/etc/qgavm/rc.sysinit", RC_SYSINIT.replace("@KVER@", kver)
                 .replace("@GUEST_IP@", GUEST_IP).replace("@GUEST_GW@", GUEST_GW)
                 .replace("@READY@", READY_MARKER), 0o755)
        st.write("/etc/qgavm/run-agent", RUN_AGENT.replace("@AGENT_MARKER@", AGENT_MARKER), 0o755)
        st.write("/etc/qgavm/agent.conf", "AGENT=%s\nAGENT_ARGS=%s\n" % (
            shlex.quote(agent_guest), shlex.quote(args.agent_args)))
        st.write("/usr/sbin/chpasswd", CHPASSWD, 0o755)
        if os.path.lexists(st.p("/sbin/shutdown")):
            os.unlink(st.p("/sbin/shutdown"))
        st.write("/sbin/shutdown", SHUTDOWN, 0o755)
        for mode in ("poweroff", "halt", "reboot"):
            if os.path.lexists(st.p("/sbin/" + mode)):
                os.unlink(st.p("/sbin/" + mode))
            st.write("/sbin/" + mode, OWN_PROGRAM.replace("@MODE@", mode), 0o755)
        st.write("/init", "#!/bin/sh\nexec /bin/busybox init\n", 0o755)
        # the agent and the extra files, with their shared libraries
        st.copy_with_libs(agent, agent_guest)
        for spec in args.extra:
            src, _, dst = spec.partition("=")
            src = os.path.abspath(src)
            dst = dst or src
            if os.path.isdir(src):
                for dp, _dn, fn in os.walk(src):
                    for f in fn:
                        s = os.path.join(dp, f)
                        st.copy_with_libs(s, os.path.join(dst, os.path.relpath(s, src)))
            else:
                st.copy_with_libs(src, dst)
        initrd = os.path.join(out, "initrd.img")
        cpio_newc(st, initrd)
        shutil.copyfile(vmlinuz, os.path.join(out, "vmlinuz"))
        # data disk
        disk = os.path.join(out, "disk.img")
        ddir = os.path.join(work, "diskroot")
        os.makedirs(ddir)
        with open(os.path.join(ddir, "hello.txt"), "w") as f:
            f.write("qgavm data disk\n")
        if os.path.exists(disk):
            os.unlink(disk)
        r = subprocess.run(["mkfs.ext4", "-q", "-L", "qgadata", "-d", ddir, "-F", disk,
                            args.disk_size], capture_output=True, text=True)
        if r.returncode != 0:
            die("mkfs.ext4 failed: " + r.stderr)
        meta = {"kernel_version": kver, "kernel_deb": os.path.basename(deb),
                "modules": [n for n, _ in mods], "agent": agent_guest,
                "agent_args": args.agent_args, "ready_marker": READY_MARKER,
                "agent_marker": AGENT_MARKER, "guest_ip": GUEST_IP, "guest_mac": GUEST_MAC,
                "vmlinuz": os.path.join(out, "vmlinuz"), "initrd": initrd, "disk": disk}
        with open(os.path.join(out, "image.json"), "w") as f:
            json.dump(meta, f, indent=2)
        log("built %s (initrd %d KiB)" % (out, os.path.getsize(initrd) // 1024))
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log("staging tree kept in %s" % work)


# --------------------------------------------------------------------------
# run


def qemu_command(args, img, run_dir):
    disk = args.disk or img["disk"]
    append = ["console=ttyS0", "panic=-1", "loglevel=%d" % args.loglevel,
              "net.ifnames=0"]
    if args.mount:
        append.append("qgavm.mount=1")
    if args.agent:
        append.append("qgavm.agent=" + args.agent)
    if args.agent_args is not None:
        append.append("qgavm.args=" + base64.b64encode(args.agent_args.encode()).decode())
    append += args.append
    cmd = [args.qemu, "-machine", "q35", "-accel", "tcg", "-m", str(args.memory),
           "-smp", str(args.smp), "-nodefaults", "-nographic", "-no-reboot",
           "-kernel", img["vmlinuz"], "-initrd", img["initrd"],
           "-append", " ".join(a for a in append if a),
           "-monitor", "none",
           "-qmp", "unix:%s,server=on,wait=off" % os.path.join(run_dir, "qmp.sock"),
           "-pidfile", os.path.join(run_dir, "qemu.pid"),
           "-chardev", "file,id=con0,path=%s" % os.path.join(run_dir, "console.log"),
           "-serial", "chardev:con0"]
    if args.isa_serial:
        cmd += ["-chardev", "socket,id=ser1,path=%s,server=on,wait=off"
                % os.path.join(run_dir, "isa.sock"), "-serial", "chardev:ser1"]
    cmd += ["-device", "virtio-serial-pci,id=vser0",
            "-chardev", "socket,id=qga0,path=%s,server=on,wait=off"
            % os.path.join(run_dir, "qga.sock"),
            "-device", "virtserialport,bus=vser0.0,chardev=qga0,name=" + VPORT_NAME,
            "-drive", "file=%s,if=none,id=d0,format=raw,discard=unmap" % disk,
            "-device", "virtio-blk-pci,drive=d0,serial=QGADISK01",
            "-netdev", "user,id=n0,restrict=on",
            "-device", "virtio-net-pci,netdev=n0,mac=%s,romfile=" % GUEST_MAC]
    if args.vsock_cid:
        cmd += ["-device", "vhost-vsock-pci,guest-cid=%d" % args.vsock_cid]
    cmd += args.qemu_arg
    return cmd


def run(args):
    out = os.path.abspath(args.outdir)
    with open(os.path.join(out, "image.json")) as f:
        img = json.load(f)
    run_dir = os.path.abspath(args.run_dir or os.path.join(out, "run"))
    os.makedirs(run_dir, exist_ok=True)
    for n in ("qga.sock", "isa.sock", "qmp.sock", "console.log", "qemu.pid"):
        try:
            os.unlink(os.path.join(run_dir, n))
        except FileNotFoundError:
            pass
    if args.fresh_disk:
        fresh = os.path.join(run_dir, "disk.img")
        shutil.copyfile(args.disk or img["disk"], fresh)
        args.disk = fresh
    cmd = qemu_command(args, img, run_dir)
    with open(os.path.join(run_dir, "qemu.cmd"), "w") as f:
        f.write(" ".join(shlex.quote(c) for c in cmd) + "\n")
    if args.print_only:
        print(" ".join(shlex.quote(c) for c in cmd))
        return 0
    # bounded: timeout(1) kills qemu after --timeout seconds (and forwards SIGTERM)
    full = ["timeout", "-k", "5", str(args.timeout)] + cmd
    log("run dir %s; qemu log %s" % (run_dir, os.path.join(run_dir, "console.log")))
    if args.background:
        with open(os.path.join(run_dir, "qemu.stderr"), "wb") as errf:
            p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                                 start_new_session=True)
        with open(os.path.join(run_dir, "runner.pid"), "w") as f:
            f.write("%d\n" % p.pid)
        if args.wait_ready:
            ok = wait_marker(os.path.join(run_dir, "console.log"), READY_MARKER,
                             args.wait_ready, p)
            if not ok:
                log("guest not ready in %ss; see %s" % (args.wait_ready,
                                                       os.path.join(run_dir, "console.log")))
                os.killpg(p.pid, signal.SIGTERM)
                return 1
        print(p.pid)
        return 0
    os.execvp(full[0], full)


def wait_marker(path, marker, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with open(path, "rb") as f:
                if marker.encode() in f.read():
                    return True
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build vmlinuz, initrd.img, disk.img into OUTDIR")
    b.add_argument("outdir")
    b.add_argument("agent", help="agent executable (dynamically linked glibc is fine)")
    b.add_argument("extra", nargs="*",
                   help="extra files/dirs: HOST_PATH or HOST_PATH=GUEST_PATH; "
                        "ELF executables get their ldd libraries too")
    b.add_argument("--agent-path", help="guest path of the agent (default: same path if "
                   "under /usr,/bin,/sbin else /usr/bin/BASENAME)")
    b.add_argument("--agent-args", default=os.environ.get(
        "QGA_VM_AGENT_ARGS", "-m virtio-serial -p /dev/virtio-ports/" + VPORT_NAME),
        help="default agent arguments (sh syntax)")
    b.add_argument("--disk-size", default="64M")
    b.add_argument("--keep-work", action="store_true")
    r = sub.add_parser("run", help="boot OUTDIR's image under qemu (TCG)")
    r.add_argument("outdir")
    r.add_argument("--run-dir", help="sockets/logs go here (default OUTDIR/run)")
    r.add_argument("--agent", help="guest path of the agent to start (default: build's)")
    r.add_argument("--agent-args", help="agent arguments (sh syntax), replaces build's")
    r.add_argument("--mount", action="store_true", help="mount /dev/vda on /mnt/data at boot")
    r.add_argument("--isa-serial", action="store_true",
                   help="add ttyS1 wired to RUN_DIR/isa.sock")
    r.add_argument("--disk", help="raw disk image (default OUTDIR/disk.img, used in place)")
    r.add_argument("--fresh-disk", action="store_true",
                   help="copy the disk into RUN_DIR first and use the copy")
    r.add_argument("--vsock-cid", type=int, default=0,
                   help="add vhost-vsock-pci (needs /dev/vhost-vsock on the host)")
    r.add_argument("--memory", type=int, default=512)
    r.add_argument("--smp", type=int, default=2)
    r.add_argument("--loglevel", type=int, default=4)
    r.add_argument("--append", action="append", default=[], help="extra kernel cmdline word")
    r.add_argument("--qemu", default=os.environ.get("QGA_VM_QEMU", "qemu-system-x86_64"))
    r.add_argument("--qemu-arg", action="append", default=[], help="extra qemu argument")
    r.add_argument("--timeout", type=int, default=int(os.environ.get("QGA_VM_TIMEOUT", "1800")),
                   help="kill qemu after this many seconds (default 1800)")
    r.add_argument("--background", action="store_true",
                   help="start detached, print the runner pid (kill its process group)")
    r.add_argument("--wait-ready", type=float, default=0,
                   help="with --background: wait up to N s for the ready marker")
    r.add_argument("--print-only", action="store_true", help="print the qemu command line")
    a = ap.parse_args()
    if a.cmd == "build":
        build(a)
    else:
        sys.exit(run(a) or 0)


if __name__ == "__main__":
    main()
