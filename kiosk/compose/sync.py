"""`kiosk sync`: the journal uploader, its own process (systemd service madoguchi-sync).

    kiosk sync [--config FILE] [--once] [--status-file PATH]

Reads the kiosk's journal read-only, sends it to city hall ([cityhall] url, device key and device id)
in signed batches ([sync] caps, timeouts and backoff), and keeps ``<data_dir>/sync-status.json``
current for kioskctl. ``--once`` drains the backlog and exits (0 when city hall holds everything).
SIGTERM/SIGINT stop it after the request in flight.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from kiosk import registry
from kiosk.compose import import_drivers, load
from kiosk.config import KioskConfig
from kiosk.errors import DeviceNotEnrolled, JournalError, KioskError
from kiosk.journal import Journal
from sync.device_key import load_device_key
from sync.uploader import Uploader, UploaderSettings

log = logging.getLogger("kiosk.sync")

STATUS_FILE = "sync-status.json"
JOURNAL_WAIT_SECONDS = 2.0


def status_path(config: KioskConfig) -> Path:
    """Where kioskctl finds the uploader's status."""
    return config.data_dir / STATUS_FILE


def build_uploader(config: KioskConfig, *, status_file: Path | None = None) -> Uploader:
    import_drivers()
    _, options = registry.check("cityhall", config.cityhall, config.source)
    key_path = Path(options.key_path)
    if not key_path.is_absolute():
        key_path = config.data_dir / key_path
    device_id = options.device_id or config.kiosk.device_id
    settings = UploaderSettings(
        url=options.url, device_id=device_id, batch_max_events=config.sync.batch_max_events,
        batch_max_bytes=config.sync.batch_max_bytes, backoff_base=config.sync.backoff_base,
        backoff_cap=config.sync.backoff_cap, request_timeout=config.sync.request_timeout,
        connect_timeout=options.connect_timeout, interval=config.sync.interval,
        heartbeat_interval=max(30.0, config.sync.interval * 6), verify=options.ca_file or True)
    key = load_device_key(key_path)
    reader = Journal(config.journal_path, config.kiosk.device_id, readonly=True)
    return Uploader(reader, key, settings, ack_journal=lambda: Journal(config.journal_path, config.kiosk.device_id),
                    status_path=status_file or status_path(config))


def _wait_for_journal(config: KioskConfig, stop: list[bool]) -> bool:
    warned = False
    while not config.journal_path.exists():
        if stop:
            return False
        if not warned:
            log.info("no journal at %s yet; waiting for the kiosk to create it", config.journal_path)
            warned = True
        time.sleep(JOURNAL_WAIT_SECONDS)
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kiosk sync", description="Upload the journal to city hall.")
    parser.add_argument("--config")
    parser.add_argument("--once", action="store_true", help="drain the backlog, then exit")
    parser.add_argument("--status-file", type=Path, help=f"default: <data_dir>/{STATUS_FILE}")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load(args.config)
    stop: list[bool] = []
    uploader: Uploader | None = None

    def on_signal(signum: int, _frame: object) -> None:
        stop.append(True)
        if uploader is not None:
            uploader.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not _wait_for_journal(config, stop):
        return 0
    try:
        uploader = build_uploader(config, status_file=args.status_file)
    except DeviceNotEnrolled as exc:
        print(f"kiosk sync: {exc}", file=sys.stderr)
        return 2
    except JournalError as exc:
        print(f"kiosk sync: {exc}", file=sys.stderr)
        return 2
    if stop:
        return 0
    log.info("uploading the journal of %s to %s", uploader.settings.device_id, uploader.settings.url)
    try:
        return uploader.run(once=args.once)
    except KioskError as exc:
        print(f"kiosk sync: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
