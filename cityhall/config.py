"""City hall's typed configuration (config/cityhall.toml), loaded with kiosk.config.load_dataclass into
frozen objects; a bad file is refused with one line naming file, key, expected and found.

Relative paths are resolved against the project root (the parent of the config file's folder), so
config/cityhall.toml can say ``var/cityhall`` wherever the service is started from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kiosk.config import DEFAULT_CITYHALL_CONFIG, load_dataclass, read_toml, resolve_path, setting

CERT_TYPES = ("juminhyo", "kazei", "hikazei")


@dataclass(frozen=True)
class ServiceSection:
    host: str = setting("127.0.0.1", doc="Address `cityhall serve` listens on.")
    port: int = setting(8470, doc="TCP port `cityhall serve` listens on.", min=1, max=65535)
    workers: int = setting(1, doc="Server worker processes (use PostgreSQL when more than 1).", min=1, max=64)
    data_dir: str = setting("var/cityhall", doc="SQLite database and the document-signing key live here.")
    database_url: str = setting("", doc="'' = SQLite file cityhall.sqlite3 in data_dir; or "
                                        "'postgresql://user@host:port/dbname' (psycopg 3).",
                                pattern=r"|postgres(ql)?://.+|sqlite:///.+")
    max_body_bytes: int = setting(64 * 1024, doc="Largest request body accepted from a kiosk (else 413).",
                                  min=1024, max=16 * 1024 * 1024)
    max_verify_bytes: int = setting(5 * 1024 * 1024, doc="Largest PDF accepted by POST /verify (else 413).",
                                    min=1024)
    max_clock_skew_seconds: int = setting(120, doc="How far a signed request's timestamp may be from city "
                                                   "hall's clock (else 401 stale_timestamp).", min=5, max=3600)
    challenge_ttl_seconds: int = setting(60, doc="How long a card challenge may be answered.", min=5, max=600)
    session_ttl_seconds: int = setting(900, doc="How long an authenticated session may issue documents.",
                                       min=30, max=7200)
    db_timeout_seconds: float = setting(10.0, doc="Longest wait for a database lock or statement.", min=0.5)
    log_level: str = setting("info", doc="uvicorn log level.", pattern=r"critical|error|warning|info|debug")


@dataclass(frozen=True)
class CitySection:
    name: str = setting("和光市", doc="City name printed on certificates.")
    mayor_name: str = setting("和光市長 柴崎 光子", doc="The certifying mayor, as printed.")
    issuance_prefix: str = setting("11229", doc="First part of every issuance number (the city code).",
                                   pattern=r"[0-9A-Z]{1,8}")


@dataclass(frozen=True)
class PkiSection:
    trusted_auth_ca_files: tuple[str, ...] = setting(doc="PEM files of the trusted JPKI user-authentication CAs.")
    crl_file: str = setting(doc="The current CRLs (PEM, one block per CA generation, or one DER CRL) of the "
                                "authentication CAs, refreshed by cron; \"\" for none (OCSP only).")
    crl_grace_hours: float = setting(24.0, doc="How long past its nextUpdate a CRL is still used; after that "
                                               "cards are not accepted (fail closed).", min=0)
    ocsp_url: str = setting("", doc="The OCSP responder (J-LIS's, reached over the verifiers' network; "
                                    "docs/revocation.md), asked once per authentication; \"\" = CRL only.",
                            pattern=r"(https?://\S+)?")
    ocsp_timeout_seconds: float = setting(3.0, doc="Longest wait for the OCSP responder.", min=0.2, max=30)
    ocsp_fallback_to_crl: bool = setting(True, doc="When the responder cannot answer (down, slow, a bad or "
                                                   "stale response), decide from the CRL; false = refuse the card.")
    ocsp_max_age_hours: float = setting(24.0, doc="A response without nextUpdate is used only while younger.",
                                        min=0.01)
    ocsp_clock_skew_seconds: int = setting(300, doc="Allowed clock difference with the responder for "
                                                    "thisUpdate/nextUpdate.", min=0, max=3600)

    def __config_check__(self) -> tuple[str, str, str] | None:
        if not self.trusted_auth_ca_files:
            return ("trusted_auth_ca_files", "at least one CA file", "an empty array")
        if not self.crl_file and not self.ocsp_url:
            return ("crl_file", "a CRL file or an ocsp_url (no card can be checked without either)", '""')
        return None

    def ocsp_settings(self):  # noqa: ANN201 - cityhall.revocation.OcspSettings, imported lazily
        if not self.ocsp_url:
            return None
        from datetime import timedelta

        from cityhall.revocation import OcspSettings
        return OcspSettings(self.ocsp_url, self.ocsp_timeout_seconds, timedelta(hours=self.ocsp_max_age_hours),
                            timedelta(seconds=self.ocsp_clock_skew_seconds))


@dataclass(frozen=True)
class RegistrySection:
    adapter: str = setting("json", doc="Resident registry adapter: 'json' (the demo registry file).",
                           pattern=r"json")
    path: str = setting("config/demo-registry.json", doc="The registry file, keyed by card certificate CN.")


@dataclass(frozen=True)
class FeesSection:
    """Fee per copy, integer yen."""

    juminhyo: int = setting(300, doc="住民票の写し", min=0, max=100000)
    kazei: int = setting(300, doc="住民税課税（所得）証明書", min=0, max=100000)
    hikazei: int = setting(300, doc="非課税証明書", min=0, max=100000)

    def fee(self, cert_type: str) -> int:
        return int(getattr(self, cert_type))


@dataclass(frozen=True)
class DocumentsSection:
    signing_key: str = setting("", doc="City hall's Ed25519 document-signing key (PEM, created mode 0600 if "
                                       "missing); '' = document-signing-key.pem in data_dir.")
    max_copies: int = setting(5, doc="Most copies of one certificate in one order.", min=1, max=20)


@dataclass(frozen=True)
class CounterSection:
    """The staff counter: alarms and where they are sent."""

    silent_after_minutes: int = setting(15, doc="A kiosk not heard from for this long is 通信途絶 and raises an "
                                                "alarm.", min=1, max=1440)
    clock_drift_seconds: int = setting(120, doc="A kiosk clock further than this from city hall's raises an "
                                                "alarm (once a day).", min=5, max=86400)
    webhook_url: str = setting("", doc="Incoming webhook for alarms ('' = none): generic JSON, Slack, Teams "
                                       "workflow or LoGo チャット (docs/counter.md).",
                               pattern=r"|https?://.+")
    webhook_format: str = setting("generic", doc="Body sent to the webhook: generic | slack | teams.",
                                  pattern=r"generic|slack|teams")
    webhook_attempts: int = setting(8, doc="Tries per message before it goes to the dead-letter list.",
                                    min=1, max=50)
    webhook_backoff_seconds: float = setting(5.0, doc="First retry delay; doubled each try up to "
                                                      "webhook_backoff_cap_seconds.", min=0.01, max=3600)
    webhook_backoff_cap_seconds: float = setting(600.0, doc="Longest delay between two tries.", min=0.01,
                                                 max=86400)
    webhook_timeout_seconds: float = setting(5.0, doc="Timeout of one webhook request.", min=0.1, max=60)
    sweep_interval_seconds: float = setting(30.0, doc="How often the background sender looks for silent "
                                                      "kiosks and due messages.", min=0.05, max=3600)

    @property
    def webhook_enabled(self) -> bool:
        return bool(self.webhook_url)


@dataclass(frozen=True)
class CityHallConfig:
    pki: PkiSection
    service: ServiceSection = ServiceSection()
    city: CitySection = CitySection()
    registry: RegistrySection = RegistrySection()
    fees: FeesSection = FeesSection()
    documents: DocumentsSection = DocumentsSection()
    counter: CounterSection = CounterSection()
    source: str = field(default="", init=False, metadata={"doc": "the file this was loaded from"})

    @property
    def root(self) -> Path:
        return Path(self.source).resolve().parent.parent if self.source else Path.cwd()

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.root / p

    @property
    def data_dir(self) -> Path:
        return self.path(self.service.data_dir)

    @property
    def database_url(self) -> str:
        if self.service.database_url:
            return self.service.database_url
        return f"sqlite:///{self.data_dir / 'cityhall.sqlite3'}"

    @property
    def signing_key_path(self) -> Path:
        return self.path(self.documents.signing_key) if self.documents.signing_key \
            else self.data_dir / "document-signing-key.pem"


def load_cityhall_config(path: str | None = None) -> CityHallConfig:
    """Load from ``path``, else $CITYHALL_CONFIG, else config/cityhall.toml."""
    source = resolve_path(path, "CITYHALL_CONFIG", DEFAULT_CITYHALL_CONFIG)
    cfg = load_dataclass(CityHallConfig, read_toml(source), source)
    object.__setattr__(cfg, "source", source)
    return cfg
