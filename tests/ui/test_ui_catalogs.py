"""The ui and errors catalogs: every language has every key, the same {fields}, and every key the
screens use; every kiosk.errors message key has a title and an action; the fonts draw every text."""
from __future__ import annotations

import inspect
import re
import string
from pathlib import Path

import pytest

import kiosk.errors
from kiosk.i18n import LOCALE_DIR, catalog
from screens import theme
from screens.routing import SCREENS
from tests.ui.conftest import LANGUAGES

SCREENS_DIR = Path(__file__).resolve().parents[2] / "screens"


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("domain", ["ui", "errors"])
def test_every_language_has_every_key_with_the_same_fields(domain: str) -> None:
    reference = catalog(domain, "ja")
    keys = reference.keys()
    assert keys
    for lang in LANGUAGES:
        assert (LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po").exists()
        cat = catalog(domain, lang)
        assert cat.keys() == keys, (lang, sorted(keys ^ cat.keys()))
        for key in keys:
            text = cat(key)
            assert text and text != key, (lang, key)
            assert fields(text) == fields(reference(key)), (lang, key)


def test_every_error_has_a_title_and_an_action_in_every_language() -> None:
    message_keys = {c.message_key for c in vars(kiosk.errors).values()
                    if inspect.isclass(c) and issubclass(c, kiosk.errors.KioskError)}
    assert len(message_keys) > 30
    for lang in LANGUAGES:
        keys = catalog("errors", lang).keys()
        for key in message_keys:
            assert f"error.{key}.title" in keys and f"error.{key}.action" in keys, (lang, key)


def keys_used_by_the_screens() -> set[str]:
    used: set[str] = set()
    for path in list(SCREENS_DIR.glob("*.py")) + list(SCREENS_DIR.glob("*.kv")):
        for line in path.read_text().splitlines():
            if "ui_id" in line:  # widget ids look like keys but are not texts
                continue
            used |= set(re.findall(r"""["']((?:screen|tech|oos|action|header|demo|money|payment|cert|option)"""
                                   r"""\.[a-z_.]*[a-z_])["']""", line))
    return used


def test_every_key_the_screens_use_is_in_the_catalog() -> None:
    used = keys_used_by_the_screens()
    assert len(used) > 80
    keys = catalog("ui", "ja").keys()
    assert not sorted(k for k in used if not k.startswith("error.") and k not in keys)
    for name in SCREENS:
        assert (SCREENS_DIR / f"{name}.py").exists() and (SCREENS_DIR / f"{name}.kv").exists(), name


def test_the_font_of_each_language_draws_all_of_its_text() -> None:
    from PIL import ImageFont
    import importlib.util
    kivy_dir = Path(importlib.util.find_spec("kivy").submodule_search_locations[0])  # without importing Kivy
    kivy_roboto = kivy_dir / "data" / "fonts" / "Roboto-Regular.ttf"
    for lang in LANGUAGES:
        name = theme.font_name(lang)
        path = str(kivy_roboto) if name == "Roboto" else theme.font_file(name)
        assert path, f"no font for {lang}"
        font = ImageFont.truetype(path, 24)
        missing_glyph = bytes(font.getmask("\ue000"))  # a private-use code point: the .notdef box
        chars = set()
        for domain in ("ui", "errors"):
            cat = catalog(domain, lang)
            for key in cat.keys():
                chars |= set(cat(key)) - set(string.whitespace)
        chars |= set(theme.LANGUAGE_NAMES[lang])
        undrawable = sorted(c for c in chars if bytes(font.getmask(c)) == missing_glyph)
        assert not undrawable, (lang, name, "".join(undrawable))
