#!/usr/bin/env python3
"""Tiny guest-agent client (stdlib only) for the qgavm harness.

    qga_client.py SOCK [--timeout S] sync            # resync like libvirt, print id
    qga_client.py SOCK ping | info                   # resync, then the command
    qga_client.py SOCK cmd '{"execute":"guest-get-time"}'   # any request (repeatable)
    qga_client.py SOCK bench [--count 200]           # boot-to-first-reply + ping p50
    qga_client.py SOCK --isa ...                     # same over the isa-serial socket

SOCK is the host end of the virtio-serial (or isa-serial) chardev: a unix
socket qemu listens on.  There are no connection boundaries towards the guest,
so every session starts with libvirt's resync: send guest-sync-delimited with
a fresh id, skip bytes up to 0xFF, then read lines until one's "return"
equals that id (stale replies from earlier requests are skipped).
"""
import argparse
import json
import os
import random
import socket
import statistics
import sys
import time


class QgaError(Exception):
    pass


class Client:
    def __init__(self, path, timeout=5.0):
        self.path = path
        self.timeout = timeout
        self.sock = None
        self.buf = b""

    def connect(self, deadline):
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.path)
                self.sock = s
                return
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def send(self, obj):
        data = json.dumps(obj, separators=(",", ":")).encode()
        assert b"\xff" not in data
        self.sock.sendall(data + b"\n")

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError
        if not chunk:
            raise QgaError("socket closed by qemu")
        self.buf += chunk

    def read_line(self, deadline):
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def sync(self, attempt_timeout=0.25, deadline=None):
        """libvirt's resync; returns the id.  Retries with a new id until deadline."""
        deadline = deadline or (time.monotonic() + self.timeout)
        while True:
            sid = random.randint(1, 2**31 - 1)
            self.send({"execute": "guest-sync-delimited", "arguments": {"id": sid}})
            att = min(deadline, time.monotonic() + attempt_timeout)
            try:
                # skip everything up to and including the 0xFF delimiter
                while b"\xff" not in self.buf:
                    self.buf = b""
                    self._fill(att)
                self.buf = self.buf.split(b"\xff", 1)[1]
                while True:
                    line = self.read_line(att).strip()
                    if not line:
                        continue
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        continue
                    if msg.get("return") == sid:
                        return sid
                    if b"\xff" in self.buf:  # a later delimiter: start over from it
                        self.buf = self.buf.rsplit(b"\xff", 1)[1]
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise TimeoutError("no guest-sync-delimited reply within timeout")

    def call(self, obj, timeout=None):
        """Send one request, return the decoded reply (dict)."""
        self.send(obj)
        if obj.get("execute") in ("guest-shutdown", "guest-suspend-disk",
                                   "guest-suspend-ram", "guest-suspend-hybrid"):
            return None  # success-response: false
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            line = self.read_line(deadline).strip().lstrip(b"\xff")
            if line:
                return json.loads(line)

    def execute(self, name, timeout=None, **arguments):
        req = {"execute": name}
        if arguments:
            req["arguments"] = arguments
        reply = self.call(req, timeout)
        if reply is not None and "error" in reply:
            raise QgaError("%s: %s" % (name, reply["error"]))
        return None if reply is None else reply.get("return")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sock")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds to wait for the first sync reply (boot time)")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--isa", action="store_true", help="(informational) isa-serial socket")
    ap.add_argument("action", choices=["sync", "ping", "info", "cmd", "bench"])
    ap.add_argument("requests", nargs="*", help="JSON requests for cmd")
    a = ap.parse_args()

    c = Client(a.sock, timeout=a.timeout)
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    c.connect(deadline)
    sid = c.sync(deadline=deadline)
    t_sync = time.monotonic() - t0
    if a.action == "sync":
        print(json.dumps({"sync_id": sid, "seconds": round(t_sync, 3)}))
    elif a.action == "ping":
        print(json.dumps(c.call({"execute": "guest-ping"})))
    elif a.action == "info":
        print(json.dumps(c.call({"execute": "guest-info"})))
    elif a.action == "cmd":
        for r in a.requests:
            print(json.dumps(c.call(json.loads(r), timeout=max(a.timeout, 30))), flush=True)
    elif a.action == "bench":
        ping = c.call({"execute": "guest-ping"})
        info = c.call({"execute": "guest-info"})
        rtts = []
        for _ in range(a.count):
            t = time.perf_counter()
            r = c.call({"execute": "guest-ping"})
            rtts.append((time.perf_counter() - t) * 1000)
            if r != {"return": {}}:
                raise QgaError("bad ping reply %r" % r)
        rtts.sort()
        print(json.dumps({
            "first_sync_seconds": round(t_sync, 3),
            "ping": ping,
            "version": info.get("return", {}).get("version"),
            "commands": len(info.get("return", {}).get("supported_commands", [])),
            "pings": a.count,
            "ping_ms_p50": round(statistics.median(rtts), 3),
            "ping_ms_p90": round(rtts[int(len(rtts) * 0.9) - 1], 3),
            "ping_ms_min": round(rtts[0], 3),
            "ping_ms_max": round(rtts[-1], 3),
        }))
    c.close()


if __name__ == "__main__":
    try:
        main()
    except (TimeoutError, QgaError, OSError) as e:
        print("qga_client: %s" % e, file=sys.stderr)
        sys.exit(2)
