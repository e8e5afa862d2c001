"""`cityhall`: run and administer the city hall service.

    cityhall serve [--host H] [--port P]         run the API (uvicorn); applies pending migrations first
    cityhall migrate                             apply pending schema migrations and exit
    cityhall device add ID PUBLIC_KEY [--label L] [--location TEXT]
    cityhall device list
    cityhall device revoke ID
    cityhall verify FILE.pdf                     is this certificate genuine? (exit 0 yes, 1 no)
    cityhall lookup ISSUANCE_NUMBER              the stored issuance record (no resident data)
    cityhall signing-key                         print the document-signing public key (PEM)
    cityhall staff add NAME [--role viewer|clerk|admin] [--password-stdin]   a dashboard login
    cityhall staff list | disable NAME | set-role NAME ROLE | reset-password NAME [--password-stdin]
    cityhall projection rebuild                  recompute the counter's projection from the journals

Every command takes --config FILE (else $CITYHALL_CONFIG, else config/cityhall.toml).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from cityhall.config import load_cityhall_config
from kiosk.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cityhall", description="Madoguchi city hall service")
    parser.add_argument("--config", help="config file (default: $CITYHALL_CONFIG or config/cityhall.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    sub.add_parser("migrate", help="apply pending schema migrations")
    device = sub.add_parser("device", help="register, list or revoke kiosk devices")
    dsub = device.add_subparsers(dest="device_command", required=True)
    add = dsub.add_parser("add", help="register a kiosk's public key (printed by `kioskctl enroll`)")
    add.add_argument("device_id")
    add.add_argument("public_key")
    add.add_argument("--label", default="")
    add.add_argument("--location", default="", help="where the kiosk stands; printed as place of issue")
    dsub.add_parser("list", help="list registered devices")
    revoke = dsub.add_parser("revoke", help="stop accepting a device's requests")
    revoke.add_argument("device_id")
    verify = sub.add_parser("verify", help="check a certificate PDF")
    verify.add_argument("pdf", type=Path)
    lookup = sub.add_parser("lookup", help="show a stored issuance record")
    lookup.add_argument("issuance_number")
    sub.add_parser("signing-key", help="print the document-signing public key")
    staff = sub.add_parser("staff", help="dashboard staff accounts")
    ssub = staff.add_subparsers(dest="staff_command", required=True)
    staff_add = ssub.add_parser("add", help="create a staff login for the dashboard")
    staff_add.add_argument("username")
    staff_add.add_argument("--display-name", default="")
    staff_add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    staff_add.add_argument("--role", default="viewer", choices=("viewer", "clerk", "admin"),
                           help="viewer sees; clerk also redeems, acknowledges, signs off; admin also manages")
    ssub.add_parser("list", help="list staff logins")
    staff_disable = ssub.add_parser("disable", help="disable a staff login and end its sessions")
    staff_disable.add_argument("username")
    staff_role = ssub.add_parser("set-role", help="change a staff login's role")
    staff_role.add_argument("username")
    staff_role.add_argument("role", choices=("viewer", "clerk", "admin"))
    staff_reset = ssub.add_parser("reset-password", help="set a new password (ends the login's sessions)")
    staff_reset.add_argument("username")
    staff_reset.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    projection = sub.add_parser("projection", help="the counter's projection of the kiosks' journals")
    psub = projection.add_subparsers(dest="projection_command", required=True)
    psub.add_parser("rebuild", help="recompute the fleet and daily-book figures from the stored journals")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from cityhall.cardauth import RevocationUnavailable
    from cityhall.devices import DeviceRegistryError
    from cityhall.registry import RegistryUnavailable
    from cityhall.storage import StorageError

    try:
        config = load_cityhall_config(args.config)
        return _run(args, config)
    except ConfigError as exc:
        print(exc.detail, file=sys.stderr)
        return 2
    except (StorageError, DeviceRegistryError, RegistryUnavailable, RevocationUnavailable) as exc:
        print(f"cityhall: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, config) -> int:  # noqa: ANN001
    from cityhall.runtime import build_runtime, open_database

    now = datetime.now(timezone.utc)
    if args.command == "serve":
        return _serve(args, config)
    if args.command == "migrate":
        db = open_database(config)
        applied = db.migrate()
        print(f"{db.describe()}: schema version {db.schema_version()}"
              + (f" (applied {', '.join(map(str, applied))})" if applied else " (up to date)"))
        db.close()
        return 0
    if args.command == "device":
        from cityhall.devices import DeviceStore

        db = open_database(config)
        db.migrate()
        store = DeviceStore(db)
        try:
            if args.device_command == "add":
                device = store.add(args.device_id, args.public_key, now, label=args.label, location=args.location)
                print(f"registered {device.device_id} ({device.public_key})")
            elif args.device_command == "list":
                for d in store.list():
                    print(f"{d.device_id}\t{d.status}\t{d.created_at.isoformat()}\t{d.label}\t{d.location}\t"
                          f"{d.public_key}")
            else:
                device = store.revoke(args.device_id, now)
                print(f"revoked {device.device_id}: its requests are refused from now on")
        finally:
            db.close()
        return 0
    if args.command == "staff":
        return _staff(args, config, now)
    if args.command == "projection":
        from cityhall.counter import projection, staff as audit

        db = open_database(config)
        db.migrate()
        try:
            counts = projection.rebuild(db)
            audit.record_now(db, now, os.environ.get("USER", "cli"), "projection_rebuild", "all",
                             events=sum(counts.values()))
        finally:
            db.close()
        print(f"rebuilt the projection of {len(counts)} kiosks from {sum(counts.values())} journal events")
        return 0
    runtime = build_runtime(config)
    try:
        if args.command == "verify":
            try:
                pdf = args.pdf.read_bytes()
            except OSError as exc:
                print(f"cityhall: cannot read {args.pdf}: {exc.strerror}", file=sys.stderr)
                return 2
            result = runtime.service.verify_pdf(pdf)
            if result["genuine"]:
                print(f"GENUINE: {args.pdf} is issuance {result['issuance_number']} ({result['cert_type']}), "
                      f"issued {result['issued_at']}")
                return 0
            print(f"NOT GENUINE: {args.pdf}: {result['reason']}: {result['detail']}"
                  + (f" (issuance {result['issuance_number']})" if result.get("issuance_number") else ""))
            return 1
        if args.command == "lookup":
            record = runtime.service.lookup(args.issuance_number)
            if record is None:
                print(f"no issuance {args.issuance_number}", file=sys.stderr)
                return 1
            print(json.dumps(record, ensure_ascii=False, indent=2))
            return 0
        if args.command == "signing-key":
            sys.stdout.write(runtime.service.signer.public_key_pem().decode("ascii"))
            return 0
    finally:
        runtime.close()
    return 2


def _read_password(args: argparse.Namespace) -> str | None:
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass(f"password for {args.username}: ")
    if getpass.getpass("again: ") != password:
        print("cityhall: the two passwords differ", file=sys.stderr)
        return None
    return password


def _staff(args: argparse.Namespace, config, now: datetime) -> int:  # noqa: ANN001
    from cityhall.counter import staff as audit
    from cityhall.dashboard.auth import StaffError, StaffStore
    from cityhall.runtime import open_database

    db = open_database(config)
    db.migrate()
    store = StaffStore(db)
    operator = os.environ.get("USER", "cli")  # who ran the command, for the audit log
    try:
        if args.staff_command == "add":
            password = _read_password(args)
            if password is None:
                return 2
            store.add(args.username, password, now, args.display_name, args.role)
            audit.record_now(db, now, operator, "staff_add", args.username, role=args.role)
            print(f"staff user {args.username} ({args.role}) can now log in to /dashboard/")
        elif args.staff_command == "list":
            for row in store.list():
                print(f"{row['username']}\t{row['display_name']}\t{row['role']}\t{row['created_at']}\t"
                      f"{'disabled ' + row['disabled_at'] if row['disabled_at'] else 'active'}")
        elif args.staff_command == "set-role":
            store.set_role(args.username, args.role)
            audit.record_now(db, now, operator, "staff_set_role", args.username, role=args.role)
            print(f"staff user {args.username} is now {args.role}")
        elif args.staff_command == "reset-password":
            password = _read_password(args)
            if password is None:
                return 2
            store.reset_password(args.username, password)
            audit.record_now(db, now, operator, "staff_reset_password", args.username)
            print(f"staff user {args.username} has a new password; their open sessions ended")
        else:
            store.disable(args.username, now)
            audit.record_now(db, now, operator, "staff_disable", args.username)
            print(f"staff user {args.username} is disabled")
    except StaffError as exc:
        print(f"cityhall: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    return 0


def _serve(args: argparse.Namespace, config) -> int:  # noqa: ANN001
    import uvicorn

    from cityhall.app import create_app
    from cityhall.runtime import build_runtime

    host = args.host or config.service.host
    port = args.port or config.service.port
    if config.service.workers > 1:
        if not config.service.database_url:
            print("cityhall: several workers need PostgreSQL (service.database_url); SQLite serves one worker",
                  file=sys.stderr)
            return 2
        build_runtime(config).close()  # migrate once, before the workers start
        os.environ["CITYHALL_CONFIG"] = config.source
        uvicorn.run("cityhall.runtime:create_app_from_environment", factory=True, host=host, port=port,
                    workers=config.service.workers, log_level=config.service.log_level, timeout_keep_alive=5)
        return 0
    runtime = build_runtime(config)
    app = create_app(runtime.service, runtime.devices)
    try:
        uvicorn.run(app, host=host, port=port, log_level=config.service.log_level, timeout_keep_alive=5)
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
