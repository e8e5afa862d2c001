"""The systemd notification protocol, in a few lines and without a dependency.

systemd passes ``$NOTIFY_SOCKET`` (a filesystem path, or ``@name`` for the abstract namespace) and, with
``WatchdogSec=``, ``$WATCHDOG_USEC``. The service sends newline-separated ``KEY=VALUE`` datagrams:
``READY=1`` once it serves, ``WATCHDOG=1`` more often than the watchdog interval (systemd recommends
half of it), ``STATUS=...`` for `systemctl status`, ``STOPPING=1`` on the way out. The protocol is
declared stable (systemd's man/notify-selfcontained-example.py). Unlike the ``sdnotify`` package,
errors are not swallowed silently: a send failure is logged once, so a broken socket shows up.
"""
from __future__ import annotations

import logging
import os
import socket
from typing import Mapping

log = logging.getLogger("kiosk.ops.notify")


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog_for_us = usec.isdigit() and (not pid or pid == str(os.getpid()))
        #: Seconds between watchdog pings: half the interval systemd enforces; None without a watchdog.
        self.ping_interval: float | None = int(usec) / 2e6 if watchdog_for_us and int(usec) > 0 else None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> bool:
        if not self.address:
            return False
        message = "\n".join(fields).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(1.0)
                sock.connect(self.address)
                sock.sendall(message)
            return True
        except OSError as exc:
            if not self._warned:
                log.error("cannot notify systemd on %r: %s; readiness and watchdog pings are lost",
                          self.address.replace("\0", "@"), exc)
                self._warned = True
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")
