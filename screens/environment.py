"""Kivy's process-wide settings, made BEFORE Kivy is imported (Kivy reads them at import time).

Call ``configure_kivy()`` once, first thing, in any process that shows the UI (`kiosk run`, the demo,
the UI tests, bench/ui.py); then import ``screens.app``.
"""
from __future__ import annotations

import os
import sys
import tempfile


def configure_kivy(width: int = 800, height: int = 480, *, fullscreen: bool = False,
                   touch_provider: str | None = None, kivy_home: str | None = None) -> None:
    """Window size, quiet logs, no command-line parsing, and exactly ONE touch input provider.

    ``touch_provider`` is a Kivy input provider spec ("mouse", or e.g. "hidinput,/dev/input/event0"
    for a panel read directly); default $KIOSK_TOUCH_PROVIDER, else "mouse" (X11 / SDL delivers the
    panel's touches as mouse events). Two providers reading one panel make every tap count twice.
    """
    if "kivy" in sys.modules:
        raise RuntimeError("configure_kivy() must run before kivy is imported")
    env = os.environ
    env.setdefault("KIVY_NO_ARGS", "1")
    env.setdefault("KIVY_NO_CONSOLELOG", "1")
    env.setdefault("KIVY_NO_FILELOG", "1")
    env.setdefault("KIVY_HOME", kivy_home or tempfile.mkdtemp(prefix="kivy-"))
    env.setdefault("KIVY_WINDOW", "sdl2")
    env.setdefault("KIVY_GL_BACKEND", "sdl2")
    env.setdefault("SDL_MOUSE_FOCUS_CLICKTHROUGH", "1")
    env["KCFG_GRAPHICS_WIDTH"] = str(width)
    env["KCFG_GRAPHICS_HEIGHT"] = str(height)
    env["KCFG_GRAPHICS_FULLSCREEN"] = "auto" if fullscreen else "0"
    env["KCFG_GRAPHICS_RESIZABLE"] = "0"
    env["KCFG_GRAPHICS_POSITION"] = "custom"
    env["KCFG_GRAPHICS_LEFT"] = "0"
    env["KCFG_GRAPHICS_TOP"] = "0"
    env["KCFG_KIVY_EXIT_ON_ESCAPE"] = "0"
    env["KCFG_KIVY_LOG_LEVEL"] = env.get("KIOSK_KIVY_LOG_LEVEL", "warning")
    from kivy.config import Config  # noqa: E402 — deliberately after the environment is set

    provider = touch_provider or env.get("KIOSK_TOUCH_PROVIDER", "mouse")
    Config.remove_section("input")
    Config.add_section("input")
    name, _, args = provider.partition(",")
    Config.set("input", "touch", provider if args else name)
    if name == "mouse":  # no red dots on right-click, no multitouch simulation on a kiosk
        Config.set("input", "touch", "mouse,disable_multitouch")
