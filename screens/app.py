"""The Kivy application: shows the engine's view states and sends back the resident's intents.

Threads: the engine runs on its own thread (``Engine.run``) and calls ``KioskApp.post_view`` from
there; the view is handed to the Kivy thread with ``Clock.schedule_once`` and applied there. Anything
else that may block (technician checks, the demo panel's emulator calls) runs on the app's one worker
thread (``run_off_ui``). Nothing on the Kivy thread does I/O.

Entry points:
    run_app(engine, config, tech=None, demo_controls=None)   the kiosk (blocks until the window closes)
    build_app(submit, ...)                                    an app not yet running (tests, gallery)
    screens.driver.AppDriver                                  step it, tap widgets by ui_id, screenshot
Call ``screens.environment.configure_kivy()`` before importing this module.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from kivy.app import App
from kivy.clock import Clock
from kivy.core.text import LabelBase
from kivy.core.window import Window
from kivy.factory import Factory
from kivy.lang import Builder
from kivy.properties import (BooleanProperty, ListProperty, NumericProperty, ObjectProperty, StringProperty)
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.screenmanager import NoTransition, ScreenManager
from kivy.uix.widget import Widget

from kiosk.engine import events as ev
from kiosk.engine.hours import ServiceHours
from kiosk.engine.view import ViewState
from kiosk.i18n import catalog
from screens import theme
from screens.protocols import DemoControls, TechnicianPort
from screens.routing import SCREENS, LocalState, screen_for

log = logging.getLogger("screens")

HERE = Path(__file__).resolve().parent
DEFAULT_GUARD_SECONDS = 0.6  # double-tap guard of action buttons
#: Where "are you still there?" is shown: steps a touch extends. DONE and ERROR end by themselves, and
#: a payment's time is not extended by a touch (the cash and QR screens show their own amounts and time).
WARN_IN_STATES = frozenset({"PIN_ENTRY", "REMOVE_CARD", "CHOOSING", "CONFIRMING"})
TECH_TAPS, TECH_TAP_WINDOW = 5, 3.0  # five taps on the hidden corner within three seconds

#: screen name -> (module, class); each module has its .kv file beside it.
SCREEN_CLASSES = {name: (name, "".join(p.capitalize() for p in name.split("_")) + "Screen") for name in SCREENS}
SCREEN_CLASSES["qr"] = ("qr", "QrScreen")
OVERLAYS = {"language": "LanguageOverlay", "warning": "WarningOverlay", "demo_panel": "DemoPanel"}

_kv_loaded = False
_fonts_registered = False


def register_fonts() -> None:
    global _fonts_registered
    if _fonts_registered:
        return
    for name in ("ipaexg", "wqy"):
        path = theme.font_file(name)
        if path:
            LabelBase.register(name, path)
    _fonts_registered = True


def load_kv() -> None:
    """Load the shared rules, the overlays and the root once per process (Kivy keeps rules for the
    life of the process); each screen's own rules are loaded when that screen is first built."""
    global _kv_loaded
    if _kv_loaded:
        return
    Builder.load_file(str(HERE / "widgets.kv"))
    for module in OVERLAYS:
        load_module_kv(module)
    Builder.load_file(str(HERE / "app.kv"))
    _kv_loaded = True


_modules_loaded: set[str] = set()


def load_module_kv(module: str) -> None:
    if module in _modules_loaded:
        return
    import importlib
    importlib.import_module(f"screens.{module}")
    Builder.load_file(str(HERE / f"{module}.kv"))
    _modules_loaded.add(module)


class KioskRoot(FloatLayout):
    pass


class _Screens(dict):  # type: ignore[type-arg]
    """Screens are built the first time they are needed (a faster cold start on a Pi)."""

    def __init__(self, manager: ScreenManager) -> None:
        super().__init__()
        self.manager = manager

    def __missing__(self, name: str) -> Any:
        module, cls = SCREEN_CLASSES[name]
        load_module_kv(module)
        screen = getattr(Factory, cls)(name=name)
        self[name] = screen
        self.manager.add_widget(screen)
        return screen


class HiddenCorner(Widget):
    """Technician entry: five taps within three seconds (not a button: residents should not find it)."""

    ui_id = StringProperty("header.technician")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._taps: list[float] = []

    def on_touch_down(self, touch: Any) -> bool:
        if not self.collide_point(*touch.pos):
            return False
        now = time.monotonic()
        self._taps = [t for t in self._taps if now - t < TECH_TAP_WINDOW] + [now]
        if len(self._taps) >= TECH_TAPS:
            self._taps = []
            App.get_running_app().enter_technician()
        return True


class KioskApp(App):
    lang = StringProperty("ja")
    font = StringProperty("ipaexg")
    mm = NumericProperty(5.25)  # pixels per millimetre of the panel
    text_scale = NumericProperty(1.0)
    large_text = BooleanProperty(False)
    high_contrast = BooleanProperty(False)
    guard_seconds = NumericProperty(DEFAULT_GUARD_SECONDS)
    view = ObjectProperty(None, allownone=True)
    screen = StringProperty("")
    city_name = StringProperty("")
    inquiry_phone = StringProperty("")
    demo_enabled = BooleanProperty(False)
    c_background = ListProperty(theme.STANDARD.background)
    c_text = ListProperty(theme.STANDARD.text)
    c_muted = ListProperty(theme.STANDARD.muted)
    c_button = ListProperty(theme.STANDARD.button)
    c_button_text = ListProperty(theme.STANDARD.button_text)
    c_secondary = ListProperty(theme.STANDARD.secondary)
    c_secondary_text = ListProperty(theme.STANDARD.secondary_text)
    c_danger = ListProperty(theme.STANDARD.danger)
    c_header = ListProperty(theme.STANDARD.header)
    c_panel = ListProperty(theme.STANDARD.panel)

    def __init__(self, submit: Callable[[object], None], *, languages: tuple[str, ...] = ("ja", "en"),
                 service_hours: ServiceHours | None = None, technician_hash: str = "", city_name: str = "",
                 inquiry_phone: str = "", tech: TechnicianPort | None = None,
                 demo_controls: DemoControls | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title = "Madoguchi"
        self._submit = submit
        self.languages = languages
        self.service_hours = service_hours
        self.technician_hash = technician_hash
        self.tech = tech
        self.demo_controls = demo_controls
        self.demo_enabled = demo_controls is not None
        self.now = now
        self.city_name = city_name
        self.inquiry_phone = inquiry_phone
        self.lang = languages[0]
        self.local = LocalState()
        self.last_action = 0.0
        self._pending: ViewState | None = None
        self._pending_lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ui-worker")
        self.screens: dict[str, Any] = {}
        self.overlays: dict[str, Any] = {}
        self.views_applied = 0

    # --- building ---------------------------------------------------------------------------------

    def build(self) -> KioskRoot:
        register_fonts()
        load_kv()
        self.font = theme.font_name(self.lang)
        self.fit_panel(*Window.size)
        Window.bind(size=lambda _w, size: self.fit_panel(*size))
        Window.bind(on_touch_down=self._any_touch)
        Window.clearcolor = self.c_background
        root = KioskRoot()
        manager: ScreenManager = root.ids.manager
        manager.transition = NoTransition()
        self.screens = _Screens(manager)
        for name, cls in OVERLAYS.items():
            self.overlays[name] = getattr(Factory, cls)()
        return root

    def fit_panel(self, width: int, height: int) -> None:
        self.mm = theme.Panel.for_size(int(width), int(height)).px_per_mm

    def on_start(self) -> None:
        if self.view is None and self._pending is None:
            self._pending = ViewState(state="IDLE", language=self.lang)
        Clock.schedule_once(self._apply_pending, 0)
        Clock.schedule_once(self._prebuild_next, 0.5)

    def _prebuild_next(self, _dt: float) -> None:
        """After the idle screen is up, build the other screens one per frame, so the first switch to
        each does not pay for building it in front of a resident."""
        missing = [name for name in SCREEN_CLASSES if name not in self.screens]
        if missing and isinstance(self.screens, _Screens):
            self.screens[missing[0]]  # noqa: B018 — building on access is the point
            Clock.schedule_once(self._prebuild_next, 0)

    def on_stop(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    # --- text, money, settings --------------------------------------------------------------------

    def tr(self, key: str, lang: str | None = None, **fields: object) -> str:
        """Text for ``key`` in ``lang`` (kv rules pass app.lang so they re-evaluate when it changes)."""
        domain = "errors" if key.startswith("error.") else "ui"
        return catalog(domain, lang or self.lang)(key, **fields)

    def has_text(self, key: str, lang: str | None = None) -> bool:
        domain = "errors" if key.startswith("error.") else "ui"
        return key in catalog(domain, lang or self.lang).keys()

    def yen(self, amount: int) -> str:
        return self.tr("money.yen", amount=f"{amount:,}")

    def font_for(self, text: str, lang: str) -> str:
        """``lang``'s font, unless ``text`` has characters it cannot draw (a Japanese city name or a PIN
        mask on an English screen): then the CJK font, which also has Latin and Vietnamese."""
        return theme.font_for(text, lang)

    def on_lang(self, _app: Any, lang: str) -> None:
        self.font = theme.font_name(lang)

    def on_large_text(self, _app: Any, large: bool) -> None:
        self.text_scale = theme.LARGE_TEXT_SCALE if large else 1.0

    def on_high_contrast(self, _app: Any, high: bool) -> None:
        palette = theme.HIGH_CONTRAST if high else theme.STANDARD
        for name in ("background", "text", "muted", "button", "button_text", "secondary", "secondary_text",
                     "danger", "header", "panel"):
            setattr(self, f"c_{name}", list(getattr(palette, name)))
        Window.clearcolor = self.c_background

    # --- intents ----------------------------------------------------------------------------------

    def accept_action(self, now: float | None = None) -> bool:
        """The double-tap guard: one accepted action per ``guard_seconds``, screen-wide."""
        now = time.monotonic() if now is None else now
        if now - self.last_action < self.guard_seconds:
            log.info("double tap ignored")
            return False
        self.last_action = now
        return True

    def submit(self, intent: object) -> None:
        self._submit(intent)

    def _any_touch(self, _window: Any, _touch: Any) -> None:
        self._submit(ev.Touch())  # the resident is still there: resets the step's inactivity timer

    def choose_language(self, lang: str) -> None:
        if lang in self.languages:
            self.lang = lang
            self.submit(ev.SetLanguage(lang))
        self.hide_overlay("language")

    def language_chosen(self, lang: str) -> None:
        """A language button: on the attract screen it also starts (the next step is the card)."""
        self.choose_language(lang)
        if self.screen == "idle":
            self.screens["idle"].update_hours()
            self.go("place_card")

    def toggle_large_text(self) -> None:
        self.large_text = not self.large_text

    def toggle_contrast(self) -> None:
        self.high_contrast = not self.high_contrast

    def go(self, step: str) -> None:
        """Move between the UI's local steps (see screens.routing)."""
        local = self.local
        if step in ("idle", "place_card", "thanks"):
            local.idle_step = step
        elif step in ("menu", "options", "copies"):
            local.choose_step = step
        elif step in ("fee", "payment_method"):
            local.confirm_step = step
        self.refresh()

    # --- views ------------------------------------------------------------------------------------

    def post_view(self, view: ViewState) -> None:
        """Any thread: keep the newest view and apply it on the Kivy thread (older ones are dropped)."""
        with self._pending_lock:
            self._pending = view
        Clock.schedule_once(self._apply_pending, -1)

    def _apply_pending(self, _dt: float = 0) -> None:
        with self._pending_lock:
            view, self._pending = self._pending, None
        if view is not None:
            self.apply_view(view)

    def apply_view(self, view: ViewState) -> None:
        """Kivy thread only."""
        previous = self.view
        self.local.follow(previous, view)
        self.view = view
        self.views_applied += 1
        if view.language != self.lang and (previous is None or view.language != previous.language):
            self.lang = view.language
        self.refresh()
        warning = self.overlays.get("warning")
        if warning is not None:
            if view.warning_seconds_left is not None and view.state in WARN_IN_STATES:
                warning.show(view)
                self.show_overlay("warning")
            else:
                self.hide_overlay("warning")

    def refresh(self) -> None:
        view = self.view
        if view is None or self.root is None:
            return
        name = screen_for(view, self.local)
        manager = self.root.ids.manager
        screen = self.screens[name]
        screen.show(view)
        if manager.current != name:
            manager.current = name
        self.screen = name
        if view.state == "IDLE" and not self.local.technician:
            self.hide_overlay("language")

    # --- overlays ---------------------------------------------------------------------------------

    def show_overlay(self, name: str) -> None:
        overlay = self.overlays[name]
        if overlay.parent is None:
            self.root.add_widget(overlay)

    def hide_overlay(self, name: str) -> None:
        overlay = self.overlays.get(name)
        if overlay is not None and overlay.parent is not None:
            overlay.parent.remove_widget(overlay)

    def toggle_overlay(self, name: str) -> None:
        if self.overlays[name].parent is None:
            self.show_overlay(name)
        else:
            self.hide_overlay(name)

    # --- technician mode --------------------------------------------------------------------------

    def enter_technician(self) -> None:
        if not self.technician_hash:
            log.info("technician mode is disabled (no kiosk.technician_credential_hash)")
            return
        if self.view is not None and self.view.state not in ("IDLE", "OUT_OF_SERVICE", "FAILSAFE"):
            return  # never in the middle of a resident's transaction
        self.local.technician = True
        self.screens["technician"].start_login()
        self.refresh()

    def leave_technician(self) -> None:
        self.local.technician = False
        self.refresh()

    # --- background work --------------------------------------------------------------------------

    def run_off_ui(self, work: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> Future[Any]:
        """Run ``work`` on the worker thread; call ``done(result, error)`` on the Kivy thread."""
        def finished(future: Future[Any]) -> None:
            error = future.exception()
            result = None if error else future.result()
            Clock.schedule_once(lambda _dt: done(result, error), -1)
        future = self._worker.submit(work)
        future.add_done_callback(finished)
        return future

    # --- automation (tests, the headless demo) ----------------------------------------------------

    def widgets(self) -> Iterator[Widget]:
        """Every widget on screen now (hidden screens and overlays are not in the tree)."""
        if self.root is not None:
            yield from self.root.walk(restrict=True)

    def find(self, ui_id: str) -> Widget | None:
        return next((w for w in self.widgets() if getattr(w, "ui_id", None) == ui_id), None)

    def uids(self) -> list[str]:
        return [w.ui_id for w in self.widgets() if getattr(w, "ui_id", "")]

    def window_point(self, ui_id: str) -> tuple[int, int]:
        """Where ``ui_id`` is on the X display (x, y from the top-left), for xdotool."""
        widget = self.find(ui_id)
        if widget is None:
            raise LookupError(f"no widget {ui_id!r} on screen {self.screen!r}; on screen: {self.uids()}")
        x, y = widget.to_window(*widget.center)
        return int(Window.left + x), int(Window.top + Window.height - y)


def build_app(submit: Callable[[object], None], **kwargs: Any) -> KioskApp:
    return KioskApp(submit, **kwargs)


def app_for(engine: Any, config: Any, *, tech: TechnicianPort | None = None,
            demo_controls: DemoControls | None = None) -> KioskApp:
    """An app wired to ``engine`` (Engine) with ``config`` (KioskConfig): the views come from the engine."""
    clock = getattr(getattr(engine, "ports", None), "clock", None)
    app = KioskApp(engine.submit, languages=tuple(config.kiosk.languages),
                   service_hours=ServiceHours.from_config(config.service_hours),
                   technician_hash=config.kiosk.technician_credential_hash, city_name=config.kiosk.city_name,
                   inquiry_phone=config.kiosk.inquiry_phone, tech=tech, demo_controls=demo_controls,
                   now=clock.now if clock is not None else (lambda: datetime.now(timezone.utc)))
    attach_engine(app, engine)
    return app


def attach_engine(app: KioskApp, engine: Any) -> None:
    """Route ``engine``'s views to ``app``, starting from its current view."""
    engine.on_view = app.post_view
    app.post_view(engine.view())


def run_app(engine: Any, config: Any, *, tech: TechnicianPort | None = None,
            demo_controls: DemoControls | None = None) -> None:
    """Show the kiosk UI for ``engine`` until the window closes (the engine runs on its own thread)."""
    app_for(engine, config, tech=tech, demo_controls=demo_controls).run()
