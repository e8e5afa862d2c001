"""The systemd notifier against a real datagram socket standing in for systemd, the watchdog's health
gate, the safe-mode start marker and the service switch."""
from __future__ import annotations

import socket
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from kiosk.config import TimeoutsSection
from kiosk.engine import events as ev
from kiosk.journal import Journal
from kiosk.ops.lifecycle import (SAFE_MODE_REASON, ApplianceLifecycle, HealthGate, HeartbeatClock, RunLock,
                                 StartMarker, SwitchWatcher, WatchdogPinger, kiosk_running, read_switch,
                                 stall_limit, write_switch)
from kiosk.ops.notify import SystemdNotifier


class FakeSystemd:
    """A bound AF_UNIX datagram socket, as systemd's notify socket is."""

    def __init__(self, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"madoguchi-test-{id(self)}"
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            self.dir = tempfile.mkdtemp(prefix="notify-")
            path = str(Path(self.dir) / "notify.sock")
            self.sock.bind(path)
            self.env_value = path
        self.sock.settimeout(0.5)

    def messages(self) -> list[str]:
        got = []
        self.sock.settimeout(0.05)
        while True:
            try:
                got.append(self.sock.recv(4096).decode())
            except (TimeoutError, socket.timeout, BlockingIOError):
                return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd() -> Iterator[FakeSystemd]:
    fake = FakeSystemd()
    yield fake
    fake.close()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_notifier_speaks_the_protocol_on_a_path_and_an_abstract_socket(systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": systemd.env_value, "WATCHDOG_USEC": "30000000"})
    assert notifier.ping_interval == 15.0
    assert notifier.ready("in service") and notifier.watchdog() and notifier.stopping()
    assert systemd.messages() == ["READY=1\nSTATUS=in service", "WATCHDOG=1", "STOPPING=1"]
    abstract = FakeSystemd(abstract=True)
    try:
        assert SystemdNotifier({"NOTIFY_SOCKET": abstract.env_value}).ready()
        assert abstract.messages() == ["READY=1"]
    finally:
        abstract.close()


def test_without_systemd_nothing_is_sent_and_a_dead_socket_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    assert not SystemdNotifier({}).ready()
    assert SystemdNotifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).ping_interval is None
    broken = SystemdNotifier({"NOTIFY_SOCKET": "/nonexistent/notify.sock"})
    assert not broken.watchdog() and not broken.watchdog()
    assert sum("cannot notify systemd" in r.message for r in caplog.records) == 1


def test_watchdog_pings_only_while_the_engine_is_healthy(systemd: FakeSystemd) -> None:
    now = Clock()
    alive = {"engine": True}
    heartbeat = HeartbeatClock(SimpleNamespace(monotonic=lambda: 0.0), now=now)
    gate = HealthGate(heartbeat, lambda: alive["engine"], limit=240.0, now=now)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": systemd.env_value, "WATCHDOG_USEC": "2000000"})
    pinger = WatchdogPinger(notifier, gate, now=now)

    sent = []
    for _ in range(10):  # healthy: the engine reads its clock every loop, the main loop ticks every 0.5 s
        heartbeat.monotonic()
        sent.append(pinger.tick())
        now.t += 0.5
    assert sent.count(True) == 5  # once per second: half the 2 s watchdog
    assert systemd.messages() == ["WATCHDOG=1"] * 5

    now.t += 240.5  # the engine loop stopped coming round (deadlock): the main loop still ticks
    assert [pinger.tick() for _ in range(5)] == [False] * 5
    assert systemd.messages() == ["STATUS=unhealthy: the engine loop has not come round for 241 s (limit 240 s)"]

    heartbeat.monotonic()  # it came back
    assert pinger.tick() is True
    alive["engine"] = False  # the engine thread died
    now.t += 5
    assert pinger.tick() is False
    assert systemd.messages() == ["WATCHDOG=1", "STATUS=unhealthy: the engine thread has ended"]


def test_the_stall_limit_covers_the_longest_step() -> None:
    assert stall_limit(TimeoutsSection()) == 180.0 + 60.0


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite3", "test-kiosk-01")
    yield j
    j.close()


class RecordingEngine:
    """Stands in for kiosk.engine.Engine: what the lifecycle touches (submit, start, state, clock)."""

    def __init__(self, settles_in: str = "IDLE") -> None:
        self.submitted: list[object] = []
        self.service_off_requested: str | None = None
        self.ports = SimpleNamespace(clock=SimpleNamespace(monotonic=lambda: 0.0, now=lambda: None))
        self.settles_in = settles_in
        self.state = SimpleNamespace(value="IDLE")  # as Engine.__init__ has it, before start()
        self.out_of_service_reason = ""

    def submit(self, event: object) -> None:
        self.submitted.append(event)

    def start(self) -> None:
        self.state = SimpleNamespace(value=self.settles_in)
        if self.settles_in == "OUT_OF_SERVICE":
            self.out_of_service_reason = self.service_off_requested or "fault"

    def run(self) -> None:
        self.start()


def test_the_service_switch_persists_and_reaches_the_engine_once_per_change(journal: Journal) -> None:
    assert read_switch(journal).in_service
    engine = RecordingEngine()
    reader = Journal(journal.path, journal.device_id, readonly=True)
    watcher = SwitchWatcher(journal.path, journal.device_id, engine, seen_serial=0)
    try:
        assert watcher.poll(reader) is None
        write_switch(journal, False, "cleaning")
        assert watcher.poll(reader).reason == "cleaning"
        assert watcher.poll(reader) is None
        write_switch(journal, True)
        watcher.poll(reader)
    finally:
        reader.close()
    assert engine.submitted == [ev.ServiceOff(reason="cleaning"), ev.ServiceOn()]
    assert read_switch(journal).in_service and read_switch(journal).serial == 2


def test_the_watcher_thread_follows_kioskctl_within_a_second(journal: Journal) -> None:
    engine = RecordingEngine()
    watcher = SwitchWatcher(journal.path, journal.device_id, engine, seen_serial=0, interval=0.05)
    watcher.start()
    try:
        write_switch(journal, False, "maintenance")
        deadline = threading.Event()
        for _ in range(100):
            if engine.submitted:
                break
            deadline.wait(0.02)
    finally:
        watcher.stop()
    assert engine.submitted == [ev.ServiceOff(reason="maintenance")]


def test_a_start_that_never_reached_a_steady_screen_makes_the_next_one_safe_mode(journal: Journal, tmp_path: Path,
                                                                                 systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": systemd.env_value, "WATCHDOG_USEC": "30000000"})
    first = ApplianceLifecycle(tmp_path, journal, journal.device_id, TimeoutsSection(), notifier)
    engine = RecordingEngine()
    first.prepare(engine, lambda: True)
    assert not first.safe_mode and engine.service_off_requested is None
    assert StartMarker(tmp_path).present()
    first.tick()
    assert systemd.messages() == []  # the engine has not started: no READY, no watchdog ping
    first.stop()  # "crashed" during start-up (engine.run never got past start): the marker stays
    assert systemd.messages() == ["STOPPING=1"]

    second = ApplianceLifecycle(tmp_path, journal, journal.device_id, TimeoutsSection(), notifier)
    engine = RecordingEngine(settles_in="OUT_OF_SERVICE")
    second.prepare(engine, lambda: True)
    assert second.safe_mode and engine.service_off_requested == SAFE_MODE_REASON
    assert [e.kind for e in journal.events()][-1] == "kiosk.safe_mode"
    engine.run()  # the engine thread: start() settles out of service
    assert systemd.messages() == ["READY=1\nSTATUS=out of service (safe_mode)"]
    assert second.tick() and systemd.messages() == ["WATCHDOG=1"]
    assert not StartMarker(tmp_path).present()
    second.stop()
    systemd.messages()

    third = ApplianceLifecycle(tmp_path, journal, journal.device_id, TimeoutsSection(), notifier)
    engine = RecordingEngine()
    third.prepare(engine, lambda: True)  # not safe mode, but still switched off until a technician says so
    assert not third.safe_mode and engine.service_off_requested == SAFE_MODE_REASON
    third.stop()


def test_one_kiosk_process_per_data_dir_and_kioskctl_can_tell(tmp_path: Path) -> None:
    assert kiosk_running(tmp_path) is None
    lock = RunLock(tmp_path)
    assert lock.acquire()
    try:
        import subprocess
        import sys
        probe = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                                "from kiosk.ops.lifecycle import kiosk_running, RunLock; "
                                f"print(kiosk_running(Path({str(tmp_path)!r})), RunLock(Path({str(tmp_path)!r})).acquire())"],
                               capture_output=True, text=True, timeout=30)
        import os
        assert probe.stdout.split() == [str(os.getpid()), "False"], probe.stderr
    finally:
        lock.release()
    assert kiosk_running(tmp_path) is None
