"""Builds the running service from its configuration (used by `cityhall serve`, the CLI and tests)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from cityhall.cardauth import CardVerifier
from cityhall.config import CityHallConfig, load_cityhall_config
from cityhall.devices import DeviceStore
from cityhall.registry import open_registry
from cityhall.service import IssuanceService
from cityhall.storage import Database


@dataclass
class Runtime:
    config: CityHallConfig
    db: Database
    devices: DeviceStore
    service: IssuanceService

    def close(self) -> None:
        self.db.close()


def open_database(config: CityHallConfig) -> Database:
    return Database(config.database_url, timeout_seconds=config.service.db_timeout_seconds)


def build_runtime(config: CityHallConfig, *, migrate: bool = True) -> Runtime:
    from cityhall.documents import DocumentSigner

    db = open_database(config)
    if migrate:
        db.migrate()
    else:
        db.require_current_schema()
    verifier = CardVerifier(tuple(config.path(p) for p in config.pki.trusted_auth_ca_files),
                            config.path(config.pki.crl_file) if config.pki.crl_file else None,
                            timedelta(hours=config.pki.crl_grace_hours), ocsp=config.pki.ocsp_settings(),
                            crl_fallback=config.pki.ocsp_fallback_to_crl)
    registry = open_registry(config.registry.adapter, config.path(config.registry.path))
    signer = DocumentSigner.load_or_create(config.signing_key_path)
    service = IssuanceService(config, db, registry, verifier, signer)
    return Runtime(config, db, DeviceStore(db), service)


def create_app_from_environment():  # noqa: ANN201 - uvicorn factory for multi-worker serving
    """uvicorn --factory entry: each worker builds its own runtime from $CITYHALL_CONFIG."""
    from cityhall.app import create_app

    runtime = build_runtime(load_cityhall_config(os.environ.get("CITYHALL_CONFIG")), migrate=False)
    return create_app(runtime.service, runtime.devices)
