"""What the kiosk's run loop (kiosk.compose.run) does for the appliance around the engine.

- **Readiness and watchdog.** ``READY=1`` goes to systemd once the engine has finished its start
  (journal check, crash recovery) and settled on its first screen (idle, or out of service). ``WATCHDOG=1`` is sent from the *main loop* and only while the health gate
  passes: the engine thread is alive and has come round its loop recently (a clock wrapper notes every
  time the engine reads the time, which its loop does at least every tick). A deadlocked engine thus
  stops the pings and systemd restarts the kiosk; a side thread pinging regardless would hide it.
- **Safe mode.** A start marker file is written before the engine starts and removed when the first
  steady screen is shown. If it is still there at the next start, the previous start never got that
  far (a crash loop during recovery or start-up): the kiosk starts out of service, reason
  ``safe_mode``, and stays so until a technician runs ``kioskctl service on``.
- **Service switch.** ``kioskctl service on|off`` writes the wanted state into the journal's meta
  table (key ``service_switch``: state, reason, a serial number). A small thread of the kiosk reads it
  every second through its own read-only journal connection and submits the engine's ServiceOn /
  ServiceOff intents when the serial changes. The switch persists: a kiosk switched off stays off
  across restarts. The updater uses the same switch to keep residents out while it installs.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from kiosk.journal import Journal, utc_now
from kiosk.ops.notify import SystemdNotifier

log = logging.getLogger("kiosk.ops")

START_MARKER = "start-incomplete"
SWITCH_KEY = "service_switch"
SAFE_MODE_REASON = "safe_mode"
STEADY_STATES = frozenset({"IDLE", "OUT_OF_SERVICE"})
SWITCH_POLL_SECONDS = 1.0
STALL_MARGIN_SECONDS = 60.0


# --- the service switch ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SwitchState:
    in_service: bool
    reason: str = ""
    serial: int = 0
    at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"in_service": self.in_service, "reason": self.reason, "serial": self.serial, "at": self.at}


def read_switch(journal: Journal) -> SwitchState:
    raw = journal.meta(SWITCH_KEY)
    if not raw:
        return SwitchState(True)
    try:
        data = json.loads(raw)
        return SwitchState(bool(data["in_service"]), str(data.get("reason", "")), int(data["serial"]),
                           str(data.get("at", "")))
    except (ValueError, KeyError, TypeError):
        log.error("journal meta %s is unreadable (%r); treating the kiosk as switched on", SWITCH_KEY, raw)
        return SwitchState(True)


def write_switch(journal: Journal, in_service: bool, reason: str = "") -> SwitchState:
    """Ask the (running or next) kiosk to go in or out of service. Returns the new switch state."""
    previous = read_switch(journal)
    state = SwitchState(in_service, "" if in_service else (reason or "maintenance"), previous.serial + 1, utc_now())
    journal.set_meta(SWITCH_KEY, json.dumps(state.as_dict(), sort_keys=True))
    return state


class Submitter(Protocol):
    def submit(self, event: object) -> None: ...


class SwitchWatcher:
    """Reads the switch through its own read-only connection and hands changes to the engine."""

    def __init__(self, journal_path: Path, device_id: str, engine: Submitter, seen_serial: int,
                 interval: float = SWITCH_POLL_SECONDS) -> None:
        self.journal_path, self.device_id, self.engine = journal_path, device_id, engine
        self.seen_serial = seen_serial
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="service-switch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def poll(self, journal: Journal) -> SwitchState | None:
        from kiosk.engine import events as ev

        state = read_switch(journal)
        if state.serial == self.seen_serial:
            return None
        self.seen_serial = state.serial
        log.info("service switch: %s%s", "on" if state.in_service else "off",
                 f" ({state.reason})" if state.reason else "")
        self.engine.submit(ev.ServiceOn() if state.in_service else ev.ServiceOff(reason=state.reason))
        return state

    def _run(self) -> None:
        journal: Journal | None = None
        while not self._stop.wait(self.interval):
            try:
                if journal is None:
                    journal = Journal(self.journal_path, self.device_id, readonly=True)
                self.poll(journal)
            except Exception as exc:  # noqa: BLE001 — a bad read must not end the watcher; retried
                log.warning("service switch not readable (%s); retrying", exc)
                if journal is not None:
                    journal.close()
                    journal = None
        if journal is not None:
            journal.close()


# --- "is the kiosk running?" --------------------------------------------------------------------------

RUN_LOCK = "kiosk.lock"


class RunLock:
    """Held (flock) by the running kiosk for its whole life; kioskctl tests it before touching devices
    that allow one user only (the ccTalk serial port, a USB receipt printer)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / RUN_LOCK
        self._fh: Any = None

    def acquire(self) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def kiosk_running(data_dir: Path) -> int | None:
    """The pid of the kiosk holding the run lock, or None when no kiosk runs on this data dir."""
    import fcntl

    path = Path(data_dir) / RUN_LOCK
    if not path.exists():
        return None
    with path.open("r") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = fh.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


# --- the start marker (safe mode) --------------------------------------------------------------------

class StartMarker:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / START_MARKER

    def begin(self) -> bool:
        """Write the marker; True when the previous start left its own marker behind."""
        previous_incomplete = self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "at": utc_now()}))
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        return previous_incomplete

    def complete(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(self.path.parent)

    def present(self) -> bool:
        return self.path.exists()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- health gate ------------------------------------------------------------------------------------

class HeartbeatClock:
    """Wraps the engine's clock: every reading is proof that the engine thread is making progress."""

    def __init__(self, inner: Any, now: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self._now = now
        self.last_beat = now()

    def monotonic(self) -> float:
        self.last_beat = self._now()
        return self.inner.monotonic()

    def now(self) -> Any:
        return self.inner.now()


def stall_limit(timeouts: Any) -> float:
    """Longest the engine may legitimately spend in one step (its longest timeout) plus a margin."""
    import dataclasses

    longest = max(float(getattr(timeouts, f.name)) for f in dataclasses.fields(timeouts))
    return longest + STALL_MARGIN_SECONDS


class HealthGate:
    """The watchdog's condition: the engine thread lives and its loop came round within ``limit``."""

    def __init__(self, heartbeat: HeartbeatClock, engine_alive: Callable[[], bool], limit: float,
                 extra: tuple[tuple[str, Callable[[], bool]], ...] = (),
                 now: Callable[[], float] = time.monotonic) -> None:
        self.heartbeat, self.engine_alive, self.limit, self.extra, self._now = heartbeat, engine_alive, limit, extra, now

    def problem(self) -> str | None:
        if not self.engine_alive():
            return "the engine thread has ended"
        age = self._now() - self.heartbeat.last_beat
        if age > self.limit:
            return f"the engine loop has not come round for {age:.0f} s (limit {self.limit:.0f} s)"
        for name, ok in self.extra:
            if not ok():
                return f"{name} has stopped"
        return None


class WatchdogPinger:
    """Called from the main loop as often as it likes; pings at the notifier's interval while healthy."""

    def __init__(self, notifier: SystemdNotifier, gate: HealthGate, now: Callable[[], float] = time.monotonic) -> None:
        self.notifier, self.gate, self._now = notifier, gate, now
        self.last_ping = float("-inf")
        self.unhealthy: str | None = None

    def tick(self) -> bool:
        """True when a WATCHDOG=1 was sent now."""
        if self.notifier.ping_interval is None:
            return False
        problem = self.gate.problem()
        if problem is not None:
            if self.unhealthy is None:  # once per episode, not on every tick
                log.critical("withholding the watchdog ping: %s; systemd will restart the kiosk", problem)
                self.notifier.status(f"unhealthy: {problem}")
            self.unhealthy = problem
            return False
        if self.unhealthy is not None:
            log.warning("healthy again; watchdog pings resume")
            self.unhealthy = None
        now = self._now()
        if now - self.last_ping < self.notifier.ping_interval:
            return False
        self.last_ping = now
        return self.notifier.watchdog()


# --- the whole, for kiosk.compose.run ----------------------------------------------------------------

class ApplianceLifecycle:
    """Three calls from the run loop (see kiosk.compose.run):

        lifecycle = ApplianceLifecycle(config.data_dir, engine.journal, device_id, config.timeouts)
        lifecycle.prepare(engine, engine_thread.is_alive)   # before the engine thread starts
        ... every ~1 s on the main loop: lifecycle.tick()
        lifecycle.stop()                                     # on the way out

    ``prepare`` wraps the engine's ``start`` (run by Engine.run on the engine thread) so that the moment
    start-up has settled, the start marker is cleared and READY=1 sent — whatever the UI does with the
    engine's view callback.
    """

    def __init__(self, data_dir: Path, journal: Journal, device_id: str, timeouts: Any,
                 notifier: SystemdNotifier | None = None) -> None:
        self.data_dir, self.journal, self.device_id, self.timeouts = Path(data_dir), journal, device_id, timeouts
        self.notifier = notifier or SystemdNotifier()
        self.marker = StartMarker(self.data_dir)
        self.run_lock = RunLock(self.data_dir)
        self.safe_mode = False
        self.ready_sent = False
        self.watcher: SwitchWatcher | None = None
        self.pinger: WatchdogPinger | None = None

    def prepare(self, engine: Any, engine_alive: Callable[[], bool]) -> None:
        if not self.run_lock.acquire():
            from kiosk.errors import OperationsError
            raise OperationsError(f"another kiosk process runs on {self.data_dir} (pid {kiosk_running(self.data_dir)}); "
                                  "one data directory serves one kiosk process")
        if self.marker.begin():
            self.safe_mode = True
            log.critical("the previous start did not reach a steady screen: starting in SAFE MODE (out of "
                         "service, technician access only). Look at `kioskctl logs`, then `kioskctl service on`.")
            self.journal.append("kiosk.safe_mode", {"marker": str(self.marker.path)})
            write_switch(self.journal, False, SAFE_MODE_REASON)
        switch = read_switch(self.journal)
        if not switch.in_service:
            engine.service_off_requested = switch.reason  # start() then settles out of service
        heartbeat = HeartbeatClock(engine.ports.clock)
        engine.ports.clock = heartbeat
        original_start = engine.start

        def start_then_ready() -> None:
            original_start()
            self.started(engine.state.value, engine.out_of_service_reason)

        engine.start = start_then_ready  # Engine.run calls self.start(): the instance attribute wins
        self.watcher = SwitchWatcher(self.journal.path, self.device_id, engine, switch.serial)
        self.watcher.start()
        gate = HealthGate(heartbeat, engine_alive, stall_limit(self.timeouts),
                          extra=(("the service switch watcher", self.watcher.alive),))
        self.pinger = WatchdogPinger(self.notifier, gate)

    def started(self, state: str, out_of_service_reason: str = "") -> None:
        """The engine's start returned in ``state``: the first steady screen is up."""
        if self.ready_sent or state not in STEADY_STATES:
            return
        self.ready_sent = True
        self.marker.complete()
        status = "in service" if state == "IDLE" else f"out of service ({out_of_service_reason})"
        self.notifier.ready(status)
        log.info("kiosk ready: %s", status)

    def tick(self) -> bool:
        return self.pinger.tick() if self.pinger is not None and self.ready_sent else False

    def stop(self) -> None:
        self.notifier.stopping()
        if self.watcher is not None:
            self.watcher.stop()
        self.run_lock.release()
