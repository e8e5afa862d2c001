"""Drive a KioskApp from a script: step its event loop, wait for screens, tap widgets by their stable
``ui_id`` the way a finger would, and take screenshots. The UI tests, the gallery, bench/ui.py and the
headless demo use it (see docs/screens/README.md).

    configure_kivy(800, 480)                 # screens.environment, before Kivy is imported
    from screens.app import app_for
    from screens.driver import AppDriver
    driver = AppDriver(app_for(engine, config)).start()
    driver.wait_screen("idle")
    driver.tap("idle.start")                 # a real click on the X display (xdotool) when there is one
    driver.screenshot("idle.png")

A tap goes through the X server (``xdotool mousemove X Y click 1``) when $DISPLAY is set and xdotool
is installed, so it travels the same path as a finger on the panel; otherwise (SDL offscreen) it is
dispatched as a touch through the window (same widgets, same double-tap guard, no X server).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from kivy.base import EventLoop, runTouchApp
from kivy.core.window import Window

from screens.app import KioskApp


class AppDriver:
    def __init__(self, app: KioskApp, *, use_xdotool: bool | None = None) -> None:
        self.app = app
        if use_xdotool is None:
            use_xdotool = bool(os.environ.get("DISPLAY")) and shutil.which("xdotool") is not None \
                and os.environ.get("SDL_VIDEODRIVER") != "offscreen"
        self.use_xdotool = use_xdotool
        self.started = False

    # --- the loop ---------------------------------------------------------------------------------

    def start(self) -> "AppDriver":
        self.app._run_prepare()
        runTouchApp(embedded=True)
        self.started = True
        self.step()
        return self

    def step(self) -> None:
        EventLoop.idle()
        EventLoop.window.mainloop()  # real X input arrives only through this

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.step()

    def run_until(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        end = time.monotonic() + timeout
        while True:
            self.step()
            result = predicate()
            if result:
                return result
            if time.monotonic() > end:
                view = self.app.view
                raise TimeoutError(f"waited {timeout:.0f} s for {what or predicate}; screen {self.app.screen!r}, "
                                   f"state {view.state if view else None}, on screen: {self.app.uids()}")

    def wait_screen(self, name: str, timeout: float = 10.0) -> None:
        self.run_until(lambda: self.app.screen == name and self.app.root.ids.manager.current == name,
                       timeout, f"screen {name!r}")
        self.step()  # one more frame so the screen is drawn

    def wait_text(self, ui_id: str, needle: str, timeout: float = 10.0) -> str:
        def has() -> str | None:
            w = self.app.find(ui_id)
            return w.text if w is not None and needle in w.text else None
        return self.run_until(has, timeout, f"{needle!r} in {ui_id!r}")

    # --- touch ------------------------------------------------------------------------------------

    def tap(self, ui_id: str, *, settle: bool = True) -> None:
        """Tap the widget ``ui_id`` once. Waits out the double-tap guard first (a person is not that quick)."""
        widget = self.run_until(lambda: self.app.find(ui_id), 5.0, f"widget {ui_id!r}")
        if getattr(widget, "kind", "") == "key":  # a key only guards against its own bounce
            from screens.widgets import KEY_GUARD_SECONDS
            wait = widget.last_fired + KEY_GUARD_SECONDS - time.monotonic()
        else:
            wait = self.app.last_action + self.app.guard_seconds - time.monotonic()
        if wait > 0:
            self.pump(wait + 0.02)
        if self.use_xdotool:
            x, y = self.app.window_point(ui_id)
            subprocess.run(["xdotool", "mousemove", str(x), str(y), "click", "1"], check=True, timeout=10)
            fired = widget.last_fired if hasattr(widget, "last_fired") else None
            if fired is not None:
                self.run_until(lambda: widget.last_fired != fired, 5.0, f"tap on {ui_id!r} to arrive")
        else:
            self.touch_at(*widget.to_window(*widget.center))
        if settle:
            self.step()

    def tap_point(self, x: int, y: int) -> None:
        """A click at X display coordinates (for places that are not widgets, like the tech corner)."""
        if self.use_xdotool:
            subprocess.run(["xdotool", "mousemove", str(x), str(y), "click", "1"], check=True, timeout=10)
            self.pump(0.05)
        else:
            self.touch_at(x - Window.left, Window.top + Window.height - y)

    def touch_at(self, x: float, y: float) -> None:
        """A touch through the event loop's input dispatch (as a provider's would go), no X server."""
        from kivy.tests.common import UnitTestTouch  # imports pytest: only when a test or bench touches

        finger = UnitTestTouch(x, y)
        finger.touch_down()
        self.step()
        finger.touch_up()
        self.step()

    # --- pictures ---------------------------------------------------------------------------------

    def screenshot(self, path: str | Path) -> Path:
        """Save what the window shows now as ``path`` (PNG)."""
        target = Path(path).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        self.step()
        self.app.root.canvas.ask_update()
        Window.canvas.ask_update()
        self.step()
        written = Window.screenshot(name=str(target))
        if written is None:
            raise RuntimeError("the window could not save a screenshot")
        os.replace(written, target)
        return target
