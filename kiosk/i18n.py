"""Translation catalogs: GNU gettext, one domain per area, one folder per language.

    kiosk/locale/<lang>/LC_MESSAGES/<domain>.po   (sources, edited by people)
    kiosk/locale/<lang>/LC_MESSAGES/<domain>.mo   (compiled by scripts/bootstrap with msgfmt)

Domains: ``ui`` (screens), ``receipt`` (receipt printer), ``errors`` (error titles and actions).
Messages are looked up by key (``msgid`` is a stable key such as ``screen.idle.title``), so a missing
translation is detectable: ``Catalog.missing`` lists keys without a translation.
"""
from __future__ import annotations

import gettext
import subprocess
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent / "locale"


class Catalog:
    def __init__(self, domain: str, lang: str) -> None:
        self.domain, self.lang = domain, lang
        self._tr = gettext.translation(domain, localedir=str(LOCALE_DIR), languages=[lang])
        self.missing: set[str] = set()

    def __call__(self, key: str, **fields: object) -> str:
        text = self._tr.gettext(key)
        if text == key:
            self.missing.add(key)
        return text.format(**fields) if fields else text

    def keys(self) -> set[str]:
        return {k for k in self._tr._catalog if isinstance(k, str) and k}  # type: ignore[attr-defined]


def ensure_compiled(locale_dir: Path = LOCALE_DIR) -> None:
    """Compile any .po newer than its .mo (bootstrap does this; tests and the demo call it too)."""
    for po in locale_dir.glob("*/LC_MESSAGES/*.po"):
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            subprocess.run(["msgfmt", "--check", "-o", str(mo), str(po)], check=True, timeout=60)


@lru_cache(maxsize=64)
def catalog(domain: str, lang: str) -> Catalog:
    ensure_compiled()
    return Catalog(domain, lang)


def languages(domain: str) -> list[str]:
    return sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{domain}.po"))
