"""The support bundle (`kioskctl diagnostics`): what a help desk needs to understand a kiosk, and no
personal data. It holds the status report, the config with every secret masked, a journal summary
(event kinds, error codes, counts — no event bodies), the update state, recent logs passed through
kiosk.ops.redact, and the machine's versions and disk space. No device key, no certificates, no
documents, no journal file.
"""
from __future__ import annotations

import io
import json
import os
import platform
import re
import shutil
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from kiosk.journal import Journal
from kiosk.ops.redact import redact

SECRET_KEY = re.compile(r"(?i)(secret|password|passwd|token|api_key|credential|hash|private)")
JOURNAL_EVENTS_IN_BUNDLE = 500


def mask_config(text: str) -> str:
    """The TOML text with the value of every secret-looking key replaced."""
    out = []
    for line in text.splitlines():
        key, sep, _value = line.partition("=")
        if sep and SECRET_KEY.search(key) and not line.lstrip().startswith("#"):
            out.append(f"{key}= \"[removed]\"")
        else:
            out.append(redact(line))
    return "\n".join(out) + "\n"


def journal_summary(journal: Journal) -> dict[str, Any]:
    events = journal.events()
    recent = events[-JOURNAL_EVENTS_IN_BUNDLE:]
    codes = Counter(int(e.body["code"]) for e in events if isinstance(e.body.get("code"), int))
    codes.update(int(e.body["error_code"]) for e in events if isinstance(e.body.get("error_code"), int))
    return {
        "stats": journal.stats().__dict__,
        "kinds": dict(Counter(e.kind for e in events)),
        "error_codes": {str(k): v for k, v in sorted(codes.items())},
        "recent": [{"seq": e.seq, "at": e.at, "kind": e.kind, "txn_id": e.txn_id,
                    "code": e.body.get("code", e.body.get("error_code")),
                    "state": e.body.get("to", e.body.get("state"))} for e in recent],
        "open_transactions": [t.txn_id for t in journal.transactions(open_only=True)],
    }


def system_info(data_dir: Path) -> dict[str, Any]:
    usage = shutil.disk_usage(data_dir) if data_dir.exists() else None
    info: dict[str, Any] = {"python": sys.version, "platform": platform.platform(), "machine": platform.machine(),
                            "hostname": platform.node(), "time": round(time.time())}
    if usage is not None:
        mib = 1024 * 1024  # MiB: no 12-digit numbers in a bundle, so a hygiene scan needs no exceptions
        info["data_dir_disk_mib"] = {"total": usage.total // mib, "used": usage.used // mib, "free": usage.free // mib}
    try:
        info["uptime_seconds"] = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        pass
    try:
        from importlib.metadata import distributions

        info["packages"] = sorted(f"{d.metadata['Name']}=={d.version}" for d in distributions())
    except Exception:  # noqa: BLE001 — diagnostics must not fail on a broken metadata entry
        info["packages"] = []
    return info


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


def write_bundle(out: Path, *, status: dict[str, Any], config_text: str, journal: Journal | None,
                 update_state: dict[str, Any], logs: list[str], data_dir: Path) -> list[str]:
    """Write ``out`` (tar.gz); returns the member names."""
    members: dict[str, bytes] = {
        "status.json": redact(json.dumps(status, indent=2, default=str)).encode(),
        "config.toml": mask_config(config_text).encode(),
        "update-state.json": json.dumps(update_state, indent=2).encode(),
        "logs.txt": "\n".join(redact(line) for line in logs).encode() + b"\n",
        "system.json": json.dumps(system_info(data_dir), indent=2).encode(),
    }
    if journal is not None:
        members["journal-summary.json"] = redact(json.dumps(journal_summary(journal), indent=2, default=str)).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, data in members.items():
            _add(tar, f"diagnostics/{name}", data)
    os.replace(tmp, out)
    return sorted(members)
