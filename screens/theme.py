"""Sizes, fonts and colours. Pure Python (no Kivy import): the app and the tests share it.

Touch targets are sized in millimetres on the physical panel: a 15 mm target is 79 px on a 7-inch
800x480 panel and 83 px on a 15.6-inch 1920x1080 one. The panel's diagonal comes from the known panels
below (or $KIOSK_PANEL_INCHES for another one).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("screens.theme")

MIN_TARGET_MM = 15.0  # smallest touch target, both directions
TARGET_MM = 16.0  # what buttons are drawn at (a margin above the minimum)

#: Known kiosk panels: pixel size -> diagonal in inches.
KNOWN_PANELS: dict[tuple[int, int], float] = {(800, 480): 7.0, (1024, 600): 7.0, (1280, 800): 10.1,
                                              (1920, 1080): 15.6}


@dataclass(frozen=True)
class Panel:
    width_px: int
    height_px: int
    diagonal_in: float

    @property
    def px_per_mm(self) -> float:
        return math.hypot(self.width_px, self.height_px) / (self.diagonal_in * 25.4)

    @classmethod
    def for_size(cls, width: int, height: int) -> "Panel":
        override = os.environ.get("KIOSK_PANEL_INCHES")
        if override:
            return cls(width, height, float(override))
        inches = KNOWN_PANELS.get((width, height))
        if inches is None:  # an unknown panel: assume a 96-dpi monitor (a developer's desktop)
            inches = math.hypot(width, height) / 96
        return cls(width, height, inches)


# --- fonts ----------------------------------------------------------------------------------------
# IPAexGothic (fonts-ipaexfont) draws Japanese; it lacks simplified Chinese and Hangul, which
# WenQuanYi Micro Hei (fonts-wqy-microhei, 5 MB) has. Kivy's bundled Roboto covers en, vi and pt.

FONT_FILES: dict[str, tuple[str, ...]] = {
    "ipaexg": ("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
               "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf"),
    "wqy": ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",),
}
FONT_FOR_LANGUAGE = {"ja": "ipaexg", "zh": "wqy", "ko": "wqy", "en": "roboto", "vi": "roboto", "pt": "roboto"}

#: Each language's name in its own script (the language buttons).
LANGUAGE_NAMES = {"ja": "日本語", "en": "English", "zh": "简体中文", "ko": "한국어", "vi": "Tiếng Việt",
                  "pt": "Português"}


def font_file(font: str) -> str | None:
    for candidate in FONT_FILES.get(font, ()):
        if Path(candidate).exists():
            return candidate
    return None


def font_name(lang: str) -> str:
    """The registered Kivy font name for ``lang`` ("Roboto" for Latin scripts)."""
    font = FONT_FOR_LANGUAGE.get(lang, "ipaexg")
    if font == "roboto":
        return "Roboto"
    if font_file(font) is None:
        if font != "ipaexg" and font_file("ipaexg"):
            log.warning("font %s for %s is missing (install fonts-wqy-microhei); using IPAexGothic", font, lang)
            return "ipaexg"
        log.warning("no CJK font installed (install fonts-ipaexfont): %s text will show as boxes", lang)
        return "Roboto"
    return font


def _latin(c: str) -> bool:
    o = ord(c)
    return o <= 0x24F or 0x1E00 <= o <= 0x1EFF or 0x2000 <= o <= 0x20BF or o == 0x2212


def font_for(text: str, lang: str) -> str:
    """``lang``'s font, or the CJK font when ``text`` has characters outside Latin (Roboto lacks them)."""
    base = font_name(lang)
    if base == "Roboto" and not all(_latin(c) for c in text):
        return font_name("zh")
    return base


# --- colours --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Palette:
    background: tuple[float, float, float, float]
    text: tuple[float, float, float, float]
    muted: tuple[float, float, float, float]
    button: tuple[float, float, float, float]
    button_text: tuple[float, float, float, float]
    secondary: tuple[float, float, float, float]
    secondary_text: tuple[float, float, float, float]
    danger: tuple[float, float, float, float]
    header: tuple[float, float, float, float]
    panel: tuple[float, float, float, float]


STANDARD = Palette(background=(0.96, 0.97, 0.99, 1), text=(0.08, 0.1, 0.16, 1), muted=(0.32, 0.35, 0.42, 1),
                   button=(0.05, 0.36, 0.72, 1), button_text=(1, 1, 1, 1), secondary=(0.84, 0.87, 0.92, 1),
                   secondary_text=(0.08, 0.1, 0.16, 1), danger=(0.72, 0.12, 0.1, 1),
                   header=(0.05, 0.22, 0.45, 1), panel=(1, 1, 1, 1))
# High contrast: white and yellow on black (WCAG contrast far above 7:1).
HIGH_CONTRAST = Palette(background=(0, 0, 0, 1), text=(1, 1, 1, 1), muted=(1, 1, 0.6, 1),
                        button=(1, 0.9, 0, 1), button_text=(0, 0, 0, 1), secondary=(1, 1, 1, 1),
                        secondary_text=(0, 0, 0, 1), danger=(1, 0.35, 0.3, 1), header=(0, 0, 0, 1),
                        panel=(0.1, 0.1, 0.1, 1))

LARGE_TEXT_SCALE = 1.3
