"""Every screen in every language: each text comes from the catalogs (no key missing anywhere), each
button is a touch target of at least 15 mm on both kiosk panels, and a screenshot of each is written."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kiosk.engine.view import ViewState
from kiosk.i18n import catalog
from screens import theme
from tests.ui.conftest import LANGUAGES, UiSession, reset_app

pytestmark = pytest.mark.ui


def test_every_screen_in_every_language_has_all_its_texts(ui_session: UiSession, tmp_path: Path) -> None:
    from screens.gallery import SAMPLES, render
    for lang in LANGUAGES:
        for domain in ("ui", "errors"):
            catalog(domain, lang).missing.clear()
    files = render(ui_session.driver, tmp_path, list(LANGUAGES))
    reset_app(ui_session)
    assert len(files) == len(LANGUAGES) * (len(SAMPLES) + 1)
    assert all(f.stat().st_size > 5000 for f in files)  # a drawn screen, not an empty picture
    missing = {(domain, lang): sorted(catalog(domain, lang).missing) for lang in LANGUAGES for domain in ("ui", "errors")}
    assert all(not keys for keys in missing.values()), missing


def touch_targets(ui_session: UiSession) -> list[tuple[str, float, float]]:
    from screens.widgets import KioskButton
    found = []
    for w in ui_session.app.widgets():
        if not isinstance(w, KioskButton) or w.disabled or w.width <= 1:
            continue
        node, visible = w, True
        while node is not None and node is not node.parent:
            if getattr(node, "opacity", 1) == 0:
                visible = False
            node = node.parent
        if visible:
            found.append((w.ui_id or w.text, w.width, w.height))
    return found


@pytest.mark.parametrize("size", [(800, 480), (1920, 1080)], ids=["7in-800x480", "15.6in-1920x1080"])
def test_every_button_is_at_least_15_mm(ui_session: UiSession, size: tuple[int, int]) -> None:
    from kivy.core.window import Window
    from screens.gallery import SAMPLES
    app, d = ui_session.app, ui_session.driver
    Window.size = size
    try:
        d.run_until(lambda: tuple(Window.size) == size, 10, f"window {size}")
        d.pump(0.2)
        px_per_mm = theme.Panel.for_size(*size).px_per_mm
        assert app.mm == pytest.approx(px_per_mm)
        minimum = theme.MIN_TARGET_MM * px_per_mm
        too_small: list[str] = []
        checked = 0
        for sample in SAMPLES:
            app.local.technician = False
            app.apply_view(ViewState(state="IDLE", language="ja"))
            app.apply_view(sample.view)
            sample.local(app)
            app.refresh()
            d.wait_screen(sample.screen)
            d.pump(0.05)
            for overlay in ([None, "language"] if sample.name == "menu" else [None]):
                if overlay:
                    app.show_overlay(overlay)
                    d.pump(0.05)
                for name, w, h in touch_targets(ui_session):
                    checked += 1
                    if min(w, h) < minimum - 0.5:
                        too_small.append(f"{sample.name}/{name}: {w / px_per_mm:.1f} x {h / px_per_mm:.1f} mm")
                if overlay:
                    app.hide_overlay(overlay)
        assert checked > 150
        assert not too_small, too_small
    finally:
        Window.size = (800, 480)
        d.run_until(lambda: tuple(Window.size) == (800, 480), 10, "window back to 800x480")
        reset_app(ui_session)


def test_panel_sizes_give_15_mm_in_pixels() -> None:
    assert 15 * theme.Panel.for_size(800, 480).px_per_mm == pytest.approx(78.7, abs=0.1)
    assert 15 * theme.Panel.for_size(1920, 1080).px_per_mm == pytest.approx(83.4, abs=0.1)


def test_gallery_samples_cover_every_screen() -> None:
    from screens.gallery import SAMPLES
    from screens.routing import SCREENS
    assert set(SCREENS) == {s.screen for s in SAMPLES}
    assert dataclasses.is_dataclass(SAMPLES[0])
