"""`kioskctl`: the technician's tool, used over SSH. Human output by default, ``--json`` for scripts.

    kioskctl status                       devices, software, journal, sync backlog, faults, in service?
    kioskctl selftest                     exercise each device safely (nothing printed, no money moved)
    kioskctl test-print a4|receipt        print a test page / a test receipt
    kioskctl sync-now                     send the journal backlog to city hall now
    kioskctl logs [-n N] [--file F]       recent kiosk logs from journald, personal data masked
    kioskctl enroll                       create the device key (once) and print the line for city hall
    kioskctl cash [refill|empty]          cash levels; record a hopper refill (--add YEN=COINS) or a cash-box
                                          emptying (--count YEN=PIECES or --counted YEN), per denomination
    kioskctl service on|off [--reason R]  in / out of service (the running kiosk follows within ~1 s)
    kioskctl diagnostics [--out F]        a support bundle with no personal data
    kioskctl release keygen|build         (build machine) make a signed release bundle
    kioskctl update BUNDLE                verify, install, switch, health-check; automatic rollback
    kioskctl rollback [--to VERSION]      back to the previous release
    kioskctl releases                     installed releases and the update state
    kioskctl banner                       one screen: device id, release, in service or why not (SSH login)
    kioskctl screen [auto|on|off]         the screen on/off with the service hours (a timer runs `auto`)
    kioskctl health | migrate             what the updater asks of a release (also usable by hand)

Every command takes --config FILE (else $KIOSK_CONFIG, else config/kiosk.toml). Exit status: 0 fine,
1 a check failed or a device is unwell, 2 the command could not run (the message says why).

Devices are reached only through kiosk.compose (the composition root). While the kiosk runs, devices that
allow a single user (the ccTalk serial bus, the receipt printer) are left to it and reported as such.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from kiosk.errors import KioskError, OperationsError

DEFAULT_ROOT = "/opt/madoguchi"
DEFAULT_RELEASE_KEY = "/etc/madoguchi/release-key.pub"
#: Roles whose device one process at a time may use.
SINGLE_USER_ROLES = ("cash", "receipt_printer")
FAULT_KINDS = ("device.fault", "alarm", "failsafe", "error", "kiosk.safe_mode")
JST_OFFSET = 9 * 3600


# --- output ---------------------------------------------------------------------------------------

@dataclass
class Out:
    as_json: bool
    stream: Any = field(default_factory=lambda: sys.stdout)

    def emit(self, data: dict[str, Any], human: Callable[[], str]) -> None:
        if self.as_json:
            self.stream.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        else:
            self.stream.write(human().rstrip("\n") + "\n")


def _jst(at: str | None) -> str:
    if not at:
        return "never"
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return at
    return datetime.fromtimestamp(moment.timestamp() + JST_OFFSET, timezone.utc).strftime("%Y-%m-%d %H:%M:%S JST")


def _mark(ok: bool | None) -> str:
    return {True: "ok  ", False: "FAIL", None: "skip"}[ok]


# --- context ---------------------------------------------------------------------------------------

class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._config: Any = None

    @property
    def config(self) -> Any:
        if self._config is None:
            from kiosk.compose import load
            self._config = load(self.args.config)
        return self._config

    def journal(self, *, readonly: bool = False) -> Any:
        from kiosk.compose import open_journal
        return open_journal(self.config, readonly=readonly)

    @property
    def root(self) -> Path:
        return Path(getattr(self.args, "root", None) or os.environ.get("MADOGUCHI_ROOT") or DEFAULT_ROOT)

    def kiosk_pid(self) -> int | None:
        from kiosk.ops.lifecycle import kiosk_running
        return kiosk_running(self.config.data_dir)


@dataclass
class Check:
    name: str
    ok: bool | None  # None: skipped
    detail: str = ""
    code: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "code": self.code, **self.extra}


def _failed(name: str, exc: BaseException) -> Check:
    if isinstance(exc, KioskError):
        return Check(name, False, exc.detail, exc.code)
    return Check(name, False, f"{type(exc).__name__}: {exc}")


def _build(ctx: Context, journal: Any, role: str) -> Any:
    from kiosk.compose import build_devices
    devices = build_devices(ctx.config, journal, roles=(role,))
    return devices


# --- device checks (status and selftest) ------------------------------------------------------------

def check_devices(ctx: Context, journal: Any, *, deep: bool) -> list[Check]:
    """One Check per configured device role; ``deep`` (selftest) goes further than status."""
    from kiosk import registry

    running = ctx.kiosk_pid()
    checks: list[Check] = []
    for role in registry.ROLES:
        if getattr(ctx.config, role) is None:
            continue
        if role in SINGLE_USER_ROLES and running is not None:
            checks.append(Check(role, None, f"in use by the running kiosk (pid {running}); stop it "
                                            "(`systemctl stop kiosk`) to test this device"))
            continue
        try:
            devices = _build(ctx, journal, role)
        except Exception as exc:  # noqa: BLE001 — a device that cannot even be built is a failed check
            checks.append(_failed(role, exc))
            continue
        try:
            checks.append(_check_role(role, devices, deep=deep))
        except Exception as exc:  # noqa: BLE001
            checks.append(_failed(role, exc))
        finally:
            devices.close()
    return checks


def _check_role(role: str, devices: Any, *, deep: bool) -> Check:
    if role == "card":
        reader = devices.card
        name = reader.reader_name() if hasattr(reader, "reader_name") else "reader"
        present = reader.card_present()
        extra: dict[str, Any] = {"reader": name, "card_present": present}
        summary = f"{name}; card {'on' if present else 'not on'} the reader"
        profile = reader.profile(name) if hasattr(reader, "profile") else None
        if profile is not None:  # the reader's model and limits (drivers/card/readers.py)
            extra["reader_model"], extra["reader_profile"] = profile.model, profile.describe()
            summary += f"\n  reader model: {profile.describe()}"
        for unusable in getattr(reader, "unusable_readers", lambda: [])():
            summary += f"\n  also plugged in: {unusable}"
            extra.setdefault("unusable_readers", []).append(unusable)
        if deep and present:
            started = time.monotonic()
            session = reader.open_session()
            try:
                size = len(session.read_auth_certificate())
            finally:
                session.close()
            elapsed = time.monotonic() - started
            extra.update(certificate_bytes=size, read_apdus=session.apdu_count, read_seconds=round(elapsed, 3))
            summary += (f"\n  read test: user-authentication certificate, {size} bytes in {session.apdu_count} "
                        f"APDUs, {elapsed * 1000:.0f} ms")
        return Check(role, True, summary, extra=extra)
    if role == "cityhall":
        devices.cityhall.ping()
        return Check(role, True, "city hall answers")
    if role == "document_printer":
        devices.document_printer.check_ready()
        return Check(role, True, "ready to print")
    if role == "receipt_printer":
        warnings = devices.receipt_printer.check_ready()
        return Check(role, True, "ready" + (f" ({', '.join(warnings)})" if warnings else ""),
                     extra={"warnings": list(warnings)})
    if role in ("cash", "qr"):
        provider = devices.payments.get(role)
        if provider is None:
            return Check(role, None, "not among the payment methods offered")
        wait_ready = getattr(provider, "wait_ready", None)
        if callable(wait_ready):
            wait_ready(10.0 if deep else 5.0)
        problem = provider.available()
        if problem is None:
            return Check(role, True, "ready to take payments")
        return Check(role, False, problem.detail or problem.state.value)
    return Check(role, None, "no check for this role")


def check_journal(journal: Any) -> Check:
    try:
        result = journal.integrity_check()
        head = journal.verify_chain()
    except Exception as exc:  # noqa: BLE001
        return _failed("journal", exc)
    if result != "ok":
        return Check("journal", False, f"integrity check: {result}")
    return Check("journal", True, f"integrity ok, hash chain ok (head {head[:12]})")


def check_disk(path: Path, minimum: int = 200 * 1024 * 1024) -> Check:
    import shutil
    usage = shutil.disk_usage(path)
    ok = usage.free >= minimum
    return Check("disk", ok, f"{usage.free // (1024 * 1024)} MiB free on {path}", extra={"free_bytes": usage.free})


# --- status ---------------------------------------------------------------------------------------

def _sync_status(ctx: Context, stats: Any) -> dict[str, Any]:
    from kiosk.compose.sync import status_path

    data: dict[str, Any] = {"backlog": stats.unsynced, "acked_seq": stats.acked_seq,
                            "oldest_unsent_at": stats.oldest_unsynced_at, "last_success_at": None,
                            "uploader_state": "unknown", "last_error": ""}
    try:
        uploader = json.loads(status_path(ctx.config).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return data
    data.update(last_success_at=uploader.get("last_success_at"), uploader_state=uploader.get("state", "unknown"),
                last_error=uploader.get("last_error", ""), uploader_updated_at=uploader.get("updated_at"))
    return data


def _recent_faults(journal: Any, limit: int = 10) -> list[dict[str, Any]]:
    found = []
    last = journal.last_seq()
    for event in reversed(journal.events(after_seq=max(0, last - 2000))):
        out_of_service = event.kind == "kiosk.state" and event.body.get("to") in ("OUT_OF_SERVICE", "FAILSAFE")
        if event.kind in FAULT_KINDS or out_of_service:
            found.append({"at": event.at, "kind": event.kind, "code": event.body.get("code", event.body.get("error_code")),
                          "detail": str(event.body.get("detail", event.body.get("reason", "")))[:200],
                          "txn_id": event.txn_id})
            if len(found) >= limit:
                break
    return found


def _service_state(journal: Any) -> dict[str, Any]:
    from kiosk.ops.lifecycle import read_switch
    switch = read_switch(journal)
    state = None
    for event in reversed(journal.events(after_seq=max(0, journal.last_seq() - 2000))):
        if event.kind in ("kiosk.state", "service.off", "service.on"):
            state = {"kind": event.kind, "at": event.at, **{k: event.body.get(k) for k in ("from", "to", "reason")}}
            break
    return {"switch": switch.as_dict(), "in_service": switch.in_service and not (state and state.get("to") in
                                                                                   ("OUT_OF_SERVICE", "FAILSAFE")),
            "last_change": state}


def software(ctx: Context) -> dict[str, Any]:
    from kiosk.ops.bootguard import current_version, load_state
    try:
        from importlib.metadata import version
        package = version("madoguchi")
    except Exception:  # noqa: BLE001 — a source checkout has no distribution metadata
        package = "source"
    return {"package_version": package, "release": current_version(ctx.root), "root": str(ctx.root),
            "update_state": load_state(ctx.root) if ctx.root.exists() else None}


def cmd_status(ctx: Context, out: Out) -> int:
    config = ctx.config
    journal = ctx.journal()
    try:
        stats = journal.stats()
        devices = check_devices(ctx, journal, deep=False)
        pid = ctx.kiosk_pid()
        data = {
            "device_id": config.kiosk.device_id, "config": config.source, "software": software(ctx),
            "kiosk_process": {"running": pid is not None, "pid": pid},
            "service": _service_state(journal),
            "journal": {"path": stats.path, "size_bytes": stats.size_bytes, "last_seq": stats.last_seq,
                        "last_event_at": stats.last_event_at, "open_transactions": stats.open_transactions},
            "sync": _sync_status(ctx, stats),
            "faults": _recent_faults(journal),
            "devices": [c.as_dict() for c in devices],
        }
    finally:
        journal.close()
    unwell = any(c.ok is False for c in devices)

    def human() -> str:
        sw, svc, j, s = data["software"], data["service"], data["journal"], data["sync"]
        lines = [f"kiosk {data['device_id']}  ({data['config']})",
                 f"  software   {sw['package_version']}  release {sw['release'] or '(not installed under ' + sw['root'] + ')'}",
                 f"  process    {'running, pid ' + str(pid) if pid else 'not running'}",
                 f"  service    {'IN SERVICE' if svc['in_service'] else 'OUT OF SERVICE'}"
                 + ("" if svc["switch"]["in_service"] else f" (switched off: {svc['switch']['reason']})"),
                 f"  journal    {j['size_bytes'] // 1024} KiB, {j['last_seq']} events, last {_jst(j['last_event_at'])}, "
                 f"{j['open_transactions']} open transaction(s)",
                 f"  sync       backlog {s['backlog']} event(s), city hall holds up to #{s['acked_seq']}, last success "
                 f"{_jst(s['last_success_at'])} ({s['uploader_state']})", "devices"]
        lines += [f"  {_mark(c['ok'])} {c['name']:<17} {c['detail']}" for c in data["devices"]]
        lines.append("recent faults" if data["faults"] else "recent faults: none")
        lines += [f"  {_jst(f['at'])}  {f['kind']:<14} {('E' + str(f['code'])) if f['code'] else '':<5} {f['detail']}"
                  for f in data["faults"]]
        return "\n".join(lines)

    out.emit(data, human)
    return 1 if unwell else 0


def cmd_selftest(ctx: Context, out: Out) -> int:
    journal = ctx.journal()
    try:
        checks = [check_journal(journal), check_disk(ctx.config.data_dir)] + check_devices(ctx, journal, deep=True)
    finally:
        journal.close()
    passed = all(c.ok is not False for c in checks)
    data = {"passed": passed, "checks": [c.as_dict() for c in checks]}
    out.emit(data, lambda: "\n".join([f"{_mark(c.ok)} {c.name:<17} {c.detail}" for c in checks]
                                     + [f"self-test {'passed' if passed else 'FAILED'}"]))
    return 0 if passed else 1


def cmd_health(ctx: Context, out: Out) -> int:
    """The updater's health gate for a release: everything imports, the config holds, the self-test passes."""
    import importlib

    from kiosk.compose import check_config
    problems: list[str] = []
    for module in ("kiosk.compose", "kiosk.compose.sync", "kiosk.compose.run", "kiosk.ops.lifecycle", "sync.uploader"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the module exists but something it needs does not
                problems.append(f"import {module}: {exc}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"import {module}: {type(exc).__name__}: {exc}")
    try:
        check_config(ctx.config)
    except KioskError as exc:
        problems.append(str(exc))
    rc = 1
    if not problems:
        buffer = _Capture()
        rc = cmd_selftest(ctx, Out(True, buffer))
        if rc != 0:
            failed = [c for c in json.loads(buffer.text)["checks"] if c["ok"] is False]
            problems += [f"self-test {c['name']}: {c['detail']}" for c in failed]
    data = {"healthy": not problems, "problems": problems}
    out.emit(data, lambda: "healthy" if not problems else "UNHEALTHY\n" + "\n".join(f"  {p}" for p in problems))
    return 0 if not problems else 1


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text


def cmd_migrate(ctx: Context, out: Out) -> int:
    journal = ctx.journal()
    try:
        version = journal.meta("schema_version")
    finally:
        journal.close()
    out.emit({"journal": str(ctx.config.journal_path), "schema_version": int(version or 0)},
             lambda: f"journal {ctx.config.journal_path} is at schema {version}")
    return 0


# --- printing, sync, keys ------------------------------------------------------------------------

def cmd_test_print(ctx: Context, out: Out) -> int:
    from kiosk.compose import test_print_pages
    testprint = test_print_pages()
    what = ctx.args.what
    role = "document_printer" if what == "a4" else "receipt_printer"
    pid = ctx.kiosk_pid()
    if role in SINGLE_USER_ROLES and pid is not None:
        raise OperationsError(f"the receipt printer is in use by the running kiosk (pid {pid}); "
                              "`systemctl stop kiosk` first, or use `kioskctl service off` and print from the screen")
    journal = ctx.journal()
    devices = _build(ctx, journal, role)
    try:
        started = time.monotonic()
        lang = ctx.config.kiosk.languages[0]
        if what == "a4":
            job = testprint.job_name_for_test_print()
            devices.document_printer.print_document(testprint.a4_test_page(ctx.config.kiosk.device_id, lang=lang), job)
        else:
            receipt = testprint.receipt_for_test_print(lang)
            job = receipt.transaction_id
            devices.receipt_printer.print_receipt(receipt)
        journal.append("ops.test_print", {"printer": what, "job_name": job})
    finally:
        devices.close()
        journal.close()
    data = {"printed": True, "printer": what, "job_name": job, "seconds": round(time.monotonic() - started, 1)}
    out.emit(data, lambda: f"printed a test {'page' if what == 'a4' else 'receipt'} ({job}) in {data['seconds']} s")
    return 0


def cmd_sync_now(ctx: Context, out: Out) -> int:
    from kiosk.compose.sync import build_uploader
    uploader = build_uploader(ctx.config)
    try:
        try:
            acked = uploader.drain()
            uploader.status.state, uploader.status.last_error = "synced", ""
            uploader.status.last_success_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            ok = True
        except Exception as exc:  # noqa: BLE001 — Refused / Unreachable: reported, not raised
            acked, ok = uploader.journal.acked_seq(), False
            uploader.status.state, uploader.status.last_error = "offline", f"{type(exc).__name__}: {exc}"
        uploader.write_status()
        status = uploader.status.as_dict()
    finally:
        for journal in (uploader.journal, getattr(uploader, "ack_journal", None)):
            if journal is not None:
                journal.close()
    data = {"synced": ok, "acked_seq": acked, "backlog": status["backlog"], "last_error": status["last_error"]}
    out.emit(data, lambda: (f"city hall holds every event up to #{acked}; backlog {status['backlog']}" if ok else
                            f"sync FAILED: {status['last_error']}; backlog {status['backlog']} event(s) kept for later"))
    return 0 if ok else 1


def cmd_technician_password(ctx: Context, out: Out) -> int:
    """hash a new technician credential for the kiosk config (never printed or stored itself)

    Read from the terminal without echo, or one line on standard input."""
    from kiosk.credential import hash_credential
    if sys.stdin.isatty():
        import getpass
        secret = getpass.getpass("new technician credential: ")
        if getpass.getpass("again: ") != secret:
            raise OperationsError("the two entries differ; nothing was changed")
    else:
        secret = sys.stdin.readline().rstrip("\n")
    if len(secret) < 8:
        raise OperationsError("a technician credential needs at least 8 characters; nothing was changed")
    hashed = hash_credential(secret)
    out.emit({"technician_credential_hash": hashed},
             lambda: "put this line in the [kiosk] section of the kiosk's config "
                     f'(config/kiosk.toml or $KIOSK_CONFIG):\ntechnician_credential_hash = "{hashed}"')
    return 0


def cmd_enroll(ctx: Context, out: Out) -> int:
    from kiosk.compose import enroll_device_key
    options = ctx.config.cityhall.options
    key_path = Path(str(options.get("key_path", "device-key.pem")))
    if not key_path.is_absolute():
        key_path = ctx.config.data_dir / key_path
    existed = key_path.exists()
    public = enroll_device_key(key_path)
    device_id = str(options.get("device_id") or "") or ctx.config.kiosk.device_id
    register = f"cityhall device add {device_id} {public} --location '{ctx.config.kiosk.location}'"
    data = {"device_id": device_id, "public_key": public, "key_path": str(key_path), "created": not existed,
            "register_with": register}
    out.emit(data, lambda: "\n".join([
        f"{'created a new' if not existed else 'existing'} device key: {key_path}",
        f"public key: {public}", "register it at city hall with:", f"  {register}"]))
    return 0


# --- logs, cash, service, diagnostics ------------------------------------------------------------

def read_logs(lines: int, file: str | None, since: str | None = None) -> tuple[list[str], str]:
    if file:
        text = Path(file).read_text(encoding="utf-8", errors="replace").splitlines()
        return text[-lines:], file
    argv = ["journalctl", "--no-pager", "-o", "short-iso", "-n", str(lines), "-u", "kiosk.service",
            "-u", "kiosk-sync.service", "-u", "madoguchi-out-of-service.service"]
    if since:
        argv += ["--since", since]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise OperationsError("journalctl is not installed here; pass --file LOGFILE") from None
    if result.returncode != 0:
        raise OperationsError(f"journalctl failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.splitlines(), "journald"


def cmd_logs(ctx: Context, out: Out) -> int:
    from kiosk.ops.redact import redact
    raw, source = read_logs(ctx.args.lines, ctx.args.file, ctx.args.since)
    lines = [redact(line) for line in raw]
    out.emit({"source": source, "lines": lines}, lambda: "\n".join(lines) or "(no log lines)")
    return 0


def _pieces(items: list[str] | None) -> dict[int, int]:
    """["100=50", "10=20"] → {100: 50, 10: 20} (denomination in yen = pieces)."""
    result: dict[int, int] = {}
    for item in items or ():
        yen, sep, count = item.partition("=")
        if not sep or not yen.strip().isdigit() or not count.strip().lstrip("-").isdigit():
            raise ValueError(f"{item!r}: write YEN=PIECES, e.g. 100=50")
        result[int(yen)] = result.get(int(yen), 0) + int(count)
    return result


def cmd_cash(ctx: Context, out: Out) -> int:
    from kiosk.ops import cashbook
    if ctx.config.cash is None:
        raise OperationsError("this kiosk has no [cash] section: it takes no cash")
    options = ctx.config.cash.options
    journal = ctx.journal()
    recorded: dict[str, Any] | None = None
    try:
        try:
            if ctx.args.cash_command == "refill":
                added = _pieces(ctx.args.add)
                if ctx.args.coin is not None or ctx.args.coins is not None:
                    if ctx.args.coin is None or ctx.args.coins is None:
                        raise ValueError("--coin and --coins go together (or use --add YEN=COINS)")
                    added[ctx.args.coin] = added.get(ctx.args.coin, 0) + ctx.args.coins
                event = cashbook.record_refills(journal, added, options)
                recorded = {"kind": event.kind, "seq": event.seq, **event.body}
            elif ctx.args.cash_command == "empty":
                pieces = _pieces(ctx.args.count) if ctx.args.count else None
                event = cashbook.record_emptied(journal, ctx.args.counted, pieces)
                recorded = {"kind": event.kind, "seq": event.seq, **event.body}
        except ValueError as exc:
            raise OperationsError(str(exc)) from None
        levels = cashbook.read_levels(journal, options)
    finally:
        journal.close()
    data = {"levels": levels.as_dict(), "recorded": recorded}

    def human() -> str:
        lv = data["levels"]
        lines = []
        if recorded is not None:
            if recorded.get("counted"):
                lines.append("counted: " + ", ".join(f"{n} x {d} yen" for d, n in recorded["counted"].items()))
            lines.append(f"recorded {recorded['kind']} (journal #{recorded['seq']})"
                         + (f": counted {recorded['counted_yen']} yen, expected {recorded['expected_yen']} yen, "
                            f"difference {recorded['difference_yen']:+d} yen" if recorded["kind"] == "cash.emptied" else ""))
        lines.append("hoppers (book: refills minus payouts)")
        lines += [f"  {h['coin_yen']:>4} yen  {h['coins']:>5} coins  {h['yen']:>8} yen" for h in lv["hoppers"]]
        lines.append(f"cash box since last emptied ({_jst(lv['last_emptied_at'])}): {lv['cashbox_yen']} yen "
                     f"(coins {lv['cashbox_coins_yen']}, notes {lv['cashbox_notes_yen']})")
        return "\n".join(lines)

    out.emit(data, human)
    return 0


def cmd_service(ctx: Context, out: Out) -> int:
    from kiosk.ops.lifecycle import write_switch
    turn_on = ctx.args.state == "on"
    journal = ctx.journal()
    try:
        seq_before = journal.last_seq()
        state = write_switch(journal, turn_on, ctx.args.reason)
        pid = ctx.kiosk_pid()
        followed = None
        if pid is not None and ctx.args.wait > 0:
            followed = _wait_for_engine(journal, seq_before, turn_on, ctx.args.wait)
    finally:
        journal.close()
    data = {"switch": state.as_dict(), "kiosk_running": pid is not None, "kiosk_followed": followed}

    def human() -> str:
        what = "in service" if turn_on else f"out of service ({state.reason})"
        if pid is None:
            return f"switched {what}; the kiosk is not running: it starts {what}"
        if followed is None:
            return f"switched {what}; the running kiosk (pid {pid}) follows within a few seconds"
        if followed:
            return f"the running kiosk (pid {pid}) is now {what}" + ("" if turn_on else
                                                                    " (after the transaction in progress, if any)")
        return f"switched {what}, but the running kiosk (pid {pid}) has not confirmed yet; check `kioskctl status`"

    out.emit(data, human)
    return 0 if followed is not False else 1


def _wait_for_engine(journal: Any, after_seq: int, turn_on: bool, timeout: float) -> bool:
    kind = "service.on" if turn_on else "service.off"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.kind == kind for e in journal.events(after_seq=after_seq)):
            return True
        time.sleep(0.2)
    return False


def cmd_diagnostics(ctx: Context, out: Out) -> int:
    from kiosk.ops.bootguard import load_state
    from kiosk.ops.diagnostics import write_bundle
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = Path(ctx.args.out or f"madoguchi-diagnostics-{ctx.config.kiosk.device_id}-{stamp}.tar.gz")
    status_buffer = _Capture()
    cmd_status(ctx, Out(True, status_buffer))
    try:
        logs, _ = read_logs(500, ctx.args.log_file)
    except (OperationsError, OSError) as exc:
        logs = [f"(logs not available: {exc})"]
    journal = ctx.journal(readonly=True) if ctx.config.journal_path.exists() else None
    try:
        members = write_bundle(target, status=json.loads(status_buffer.text),
                               config_text=Path(ctx.config.source).read_text(encoding="utf-8"), journal=journal,
                               update_state=load_state(ctx.root) if ctx.root.exists() else {}, logs=logs,
                               data_dir=ctx.config.data_dir)
    finally:
        if journal is not None:
            journal.close()
    data = {"bundle": str(target), "members": members, "bytes": target.stat().st_size}
    out.emit(data, lambda: f"wrote {target} ({data['bytes'] // 1024} KiB: {', '.join(members)}); no personal data")
    return 0


# --- releases --------------------------------------------------------------------------------------

def cmd_release(ctx: Context, out: Out) -> int:
    from kiosk.ops import release
    args = ctx.args
    if args.release_command == "keygen":
        public = release.generate_release_key(Path(args.key))
        out.emit({"private_key": args.key, "public_key": public},
                 lambda: f"release signing key written to {args.key} (keep it off the kiosks)\n"
                         f"its public half, {args.key}.pub, goes to /etc/madoguchi/release-key.pub on every kiosk:\n"
                         f"{public}")
        return 0
    key = release.load_private_key(Path(args.key))
    import tempfile
    with tempfile.TemporaryDirectory(prefix="madoguchi-wheels-") as scratch:
        wheels = Path(args.wheels) if args.wheels else Path(scratch)
        if not args.wheels:
            release.build_wheels(Path(args.project), wheels)
        bundle = release.build_bundle(wheels_dir=wheels, version=args.version, requirement=args.requirement, key=key,
                                      out=Path(args.out or f"madoguchi-{args.version}.bundle"),
                                      compatible=args.compatible, machines=tuple(args.machine) if args.machine else None,
                                      journal_schema=(args.schema_min, args.schema_max))
    out.emit({"bundle": str(bundle), "version": args.version, "bytes": bundle.stat().st_size},
             lambda: f"wrote {bundle} (release {args.version}, {bundle.stat().st_size // 1024} KiB, signed)")
    return 0


def _updater(ctx: Context, out: Out) -> Any:
    from kiosk.ops.update import JournalGate, Layout, NoService, SystemdService, Updater
    config = ctx.config
    gate = JournalGate(config.journal_path, config.kiosk.device_id)
    systemd = Path("/run/systemd/system").is_dir() and not ctx.args.no_systemd
    steps: list[dict[str, str]] = []

    def on_step(step: str, detail: str) -> None:
        steps.append({"step": step, "detail": detail})
        if not out.as_json:
            print(f"  {step:<12} {detail}", flush=True)

    updater = Updater(Layout(ctx.root), Path(ctx.args.release_key), gate=gate,
                      service=SystemdService() if systemd else NoService(), on_step=on_step,
                      wait_timeout=ctx.args.wait, release_env={"KIOSK_CONFIG": str(Path(config.source).resolve())})
    return updater, steps


def cmd_update(ctx: Context, out: Out) -> int:
    updater, steps = _updater(ctx, out)
    old, new = updater.update(Path(ctx.args.bundle))
    out.emit({"updated": True, "from": old, "to": new, "steps": steps},
             lambda: f"release {new} is running (was {old or 'none'})")
    return 0


def cmd_rollback(ctx: Context, out: Out) -> int:
    updater, steps = _updater(ctx, out)
    old, new = updater.rollback(ctx.args.to)
    out.emit({"rolled_back": True, "from": old, "to": new, "steps": steps},
             lambda: f"went back from release {old} to {new}")
    return 0


def cmd_releases(ctx: Context, out: Out) -> int:
    from kiosk.ops.bootguard import load_state
    from kiosk.ops.update import Layout
    layout = Layout(ctx.root)
    state = load_state(ctx.root)
    data = {"root": str(ctx.root), "current": layout.current_version(), "installed": layout.installed(), "state": state}
    out.emit(data, lambda: "\n".join([f"{'*' if v == data['current'] else ' '} {v}"
                                      + ("  (pending confirmation)" if v == state.get("pending") else "")
                                      + ("  (failed, rolled back)" if v in (state.get("bad") or []) else "")
                                      for v in data["installed"]] or [f"no releases under {ctx.root}"]))
    return 0


def cmd_banner(ctx: Context, out: Out) -> int:
    """the technician's login banner: device id, release, in service or not (and why)"""
    config = ctx.config
    sw = software(ctx)
    pid = ctx.kiosk_pid()
    try:
        journal = ctx.journal(readonly=True)
        try:
            service = _service_state(journal)
        finally:
            journal.close()
    except Exception as exc:  # noqa: BLE001 — the banner must show even when the journal cannot be read
        service = {"in_service": False, "switch": {"in_service": False, "reason": f"journal unreadable: {exc}"},
                   "last_change": None}
    reason = ""
    if not service["in_service"]:
        change = service.get("last_change") or {}
        reason = service["switch"].get("reason") or str(change.get("reason") or "") or "see `kioskctl status`"
    state = "IN SERVICE" if service["in_service"] and pid else ("OUT OF SERVICE" if pid else "KIOSK NOT RUNNING")
    data = {"device_id": config.kiosk.device_id, "location": config.kiosk.location, "release": sw["release"],
            "package_version": sw["package_version"], "state": state, "reason": reason,
            "pending": (sw.get("update_state") or {}).get("pending")}
    out.emit(data, lambda: "\n".join([
        f"Madoguchi kiosk {data['device_id']} — {data['location']}",
        f"  release  {data['release'] or 'none installed'}"
        + (f" (on trial: {data['pending']})" if data["pending"] else ""),
        f"  state    {state}" + (f" ({reason})" if reason and state != "IN SERVICE" else ""),
        "  sudo kioskctl status | selftest | logs | update BUNDLE | rollback   (docs/operations.md)"]))
    return 0


def cmd_screen(ctx: Context, out: Out) -> int:
    """the screen on/off with the service hours (madoguchi-screen.timer runs `screen auto`)"""
    from kiosk.engine.hours import ServiceHours
    from kiosk.ops import screen
    hours = ServiceHours.from_config(ctx.config.service_hours)
    decision = screen.decide(hours, datetime.now(timezone.utc), None if ctx.args.mode == "auto" else ctx.args.mode)
    record = screen.apply(decision, ctx.config.data_dir)
    out.emit(record, lambda: f"screen {'on' if decision.on else 'off'}: {decision.why}; "
                             + (f"backlight {', '.join(record['backlights'])}" if record["backlights"]
                                else "no backlight device here (HDMI or a container): decision recorded only")
                             + "".join(f"; FAILED {e}" for e in record["errors"]))
    return 1 if record["errors"] else 0


# --- the parser ------------------------------------------------------------------------------------

COMMANDS: dict[str, Callable[[Context, Out], int]] = {
    "status": cmd_status, "selftest": cmd_selftest, "health": cmd_health, "migrate": cmd_migrate,
    "test-print": cmd_test_print, "sync-now": cmd_sync_now, "enroll": cmd_enroll, "logs": cmd_logs,
    "cash": cmd_cash, "service": cmd_service, "diagnostics": cmd_diagnostics, "release": cmd_release,
    "update": cmd_update, "rollback": cmd_rollback, "releases": cmd_releases,
    "technician-password": cmd_technician_password, "banner": cmd_banner, "screen": cmd_screen,
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="kiosk config (default $KIOSK_CONFIG or config/kiosk.toml)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    common.add_argument("--root", default=argparse.SUPPRESS, help=f"install root (default $MADOGUCHI_ROOT or {DEFAULT_ROOT})")
    parser = argparse.ArgumentParser(prog="kioskctl", description=__doc__.split("\n\n")[0], parents=[common],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("status", "selftest", "health", "migrate", "sync-now", "enroll", "releases", "technician-password", "banner"):
        sub.add_parser(name, parents=[common], help=COMMANDS[name].__doc__ and COMMANDS[name].__doc__.split("\n")[0])
    p = sub.add_parser("test-print", parents=[common], help="print a test page (a4) or a test receipt")
    p.add_argument("what", choices=("a4", "receipt"))
    p = sub.add_parser("screen", parents=[common], help="screen on/off with the service hours")
    p.add_argument("mode", choices=("auto", "on", "off"), nargs="?", default="auto")
    p = sub.add_parser("logs", parents=[common], help="recent kiosk logs, personal data masked")
    p.add_argument("-n", "--lines", type=int, default=200)
    p.add_argument("--since", help="journalctl --since value, e.g. '1 hour ago'")
    p.add_argument("--file", help="read this log file instead of journald")
    p = sub.add_parser("cash", parents=[common], help="cash levels; record refills and emptying")
    cash = p.add_subparsers(dest="cash_command")
    refill = cash.add_parser("refill", parents=[common], help="coins put into a hopper")
    refill.add_argument("--coin", type=int, help="the hopper's coin, yen (with --coins)")
    refill.add_argument("--coins", type=int, help="how many coins were added (with --coin)")
    refill.add_argument("--add", action="append", metavar="YEN=COINS",
                        help="coins added per denomination, e.g. --add 100=50 --add 10=100")
    empty = cash.add_parser("empty", parents=[common], help="the cash box was emptied")
    empty.add_argument("--counted", type=int, help="yen counted out of the cash box (a total)")
    empty.add_argument("--count", action="append", metavar="YEN=PIECES",
                       help="pieces counted per denomination, e.g. --count 1000=12 --count 100=34")
    p = sub.add_parser("service", parents=[common], help="take the kiosk in or out of service")
    p.add_argument("state", choices=("on", "off"))
    p.add_argument("--reason", default="maintenance")
    p.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the running kiosk to follow")
    p = sub.add_parser("diagnostics", parents=[common], help="write a support bundle (no personal data)")
    p.add_argument("--out", help="bundle file (default madoguchi-diagnostics-<device>-<time>.tar.gz)")
    p.add_argument("--log-file", help="take logs from this file instead of journald")
    p = sub.add_parser("release", parents=[common], help="(build machine) release keys and bundles")
    rel = p.add_subparsers(dest="release_command", required=True)
    keygen = rel.add_parser("keygen", parents=[common], help="create the release signing key")
    keygen.add_argument("key")
    build = rel.add_parser("build", parents=[common], help="build a signed release bundle")
    build.add_argument("--key", required=True, help="release signing key (PEM)")
    build.add_argument("--version", required=True)
    build.add_argument("--out")
    build.add_argument("--project", default=".", help="project to build wheels of (with [all] extras)")
    build.add_argument("--wheels", help="use the wheels in this directory instead of building them")
    build.add_argument("--requirement", default="madoguchi[all]", help="what the kiosk installs from the wheels")
    build.add_argument("--compatible", default="madoguchi-kiosk")
    build.add_argument("--machine", action="append", help="CPU the wheels are for (default: detected)")
    build.add_argument("--schema-min", type=int, default=1)
    build.add_argument("--schema-max", type=int, default=1)
    for name, help_text in (("update", "install a release bundle"), ("rollback", "go back to the previous release")):
        p = sub.add_parser(name, parents=[common], help=help_text)
        if name == "update":
            p.add_argument("bundle")
        else:
            p.add_argument("--to", help="an installed release (default: the previous one)")
        p.add_argument("--release-key", default=DEFAULT_RELEASE_KEY)
        p.add_argument("--wait", type=float, default=900.0, help="seconds to wait for a transaction to end")
        p.add_argument("--no-systemd", action="store_true", help="do not restart kiosk.service")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.config = getattr(args, "config", None)
    out = Out(bool(getattr(args, "json", False)))
    ctx = Context(args)
    try:
        return COMMANDS[args.command](ctx, out)
    except KioskError as exc:
        if out.as_json:
            print(json.dumps({"error": exc.as_dict()}, ensure_ascii=False))
        print(f"kioskctl {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
