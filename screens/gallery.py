"""A picture of every screen in every language, from sample view states (no engine, no devices).

    .venv/bin/python -m screens.gallery --out docs/screens --languages ja,en

writes docs/screens/<lang>/<nn>-<screen>.png (800x480, the 7-inch panel). The UI tests run it for all
six languages and check no text key was missing. Without $DISPLAY it starts its own Xvfb.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from kiosk.engine.view import ErrorView, PaymentView, ViewState
from kiosk.ports import Offer, OrderLine

OFFERS = (Offer("juminhyo", 300, options=("with_household", "with_honseki", "with_relationship"), max_copies=3),
          Offer("kazei", 300, tax_years=(2025, 2024), max_copies=2),
          Offer("hikazei", 300, tax_years=(2025,), max_copies=2))
ORDER = (OrderLine("juminhyo", 2, 300, None, ("with_household",)),)
TXN = dict(txn_id="t-gallery", pin_tries_left=3, pin_entry_id=1, offers=OFFERS, payment_methods=("cash", "qr"))


@dataclasses.dataclass(frozen=True)
class Sample:
    name: str  # file name (the screen, or screen-variant)
    screen: str  # the screen it must show
    view: ViewState
    local: Callable[[Any], None] = lambda app: None


def _v(state: str, **fields: Any) -> ViewState:
    return ViewState(state=state, language="ja", **fields)


def _choose(step: str, cert: str = "juminhyo", copies: int = 1) -> Callable[[Any], None]:
    def setup(app: Any) -> None:
        offer = next(o for o in OFFERS if o.cert_type == cert)
        app.local.choice.start(offer)
        app.local.choice.copies = copies
        app.local.choice.options = {"with_household"}
        app.local.choose_step = step
    return setup


def _local(attr: str, value: str) -> Callable[[Any], None]:
    return lambda app: setattr(app.local, attr, value)


def _tech(logged_in: bool) -> Callable[[Any], None]:
    def setup(app: Any) -> None:
        app.enter_technician()
        screen = app.screens["technician"]
        if logged_in:
            screen.logged_in = True
            screen.output = "OK  card: Virtual PCD 00 00\nOK  cityhall: 200\nNG  receipt_printer: E401 paper end"
        else:
            for digit in "1234":
                screen.press(digit)
    return setup


SAMPLES: tuple[Sample, ...] = (
    Sample("idle", "idle", _v("IDLE")),
    Sample("place_card", "place_card", _v("IDLE"), _local("idle_step", "place_card")),
    Sample("reading", "reading", _v("CARD_READING", txn_id="t", card_present=True)),
    Sample("pin", "pin", _v("PIN_ENTRY", card_present=True, **TXN)),
    Sample("pin-wrong", "pin", _v("PIN_ENTRY", card_present=True, wrong_pin=True, **{**TXN, "pin_tries_left": 2})),
    Sample("pin-last-try", "pin", _v("PIN_ENTRY", card_present=True, last_try_confirm_needed=True,
                                     **{**TXN, "pin_tries_left": 1})),
    Sample("remove_card", "remove_card", _v("REMOVE_CARD", card_present=True, **TXN)),
    Sample("menu", "menu", _v("CHOOSING", **TXN)),
    Sample("options", "options", _v("CHOOSING", **TXN), _choose("options")),
    Sample("copies", "copies", _v("CHOOSING", **TXN), _choose("copies", copies=2)),
    Sample("fee", "fee", _v("CONFIRMING", order=ORDER, total_yen=600, **TXN)),
    Sample("payment_method", "payment_method", _v("CONFIRMING", order=ORDER, total_yen=600, exact_amount_only=True,
                                                  **TXN), _local("confirm_step", "payment_method")),
    Sample("cash", "cash", _v("PAYING", order=ORDER, total_yen=600, payment=PaymentView("cash", 600, 1000, 400),
                              **TXN)),
    Sample("qr", "qr", _v("PAYING", order=ORDER, total_yen=600,
                          payment=PaymentView("qr", 600, qr_payload="https://qr.example/pay/0123456789abcdef",
                                              seconds_left=154), **TXN)),
    Sample("printing", "printing", _v("PRINTING", order=ORDER, total_yen=600, documents_total=2, documents_printed=1,
                                      **TXN)),
    Sample("done", "done", _v("DONE", order=ORDER, total_yen=600, documents_total=2, documents_printed=2,
                              receipt_printed=True, **TXN)),
    Sample("done-refund", "done", _v("DONE", order=ORDER, total_yen=600, documents_total=2, documents_printed=0,
                                     receipt_printed=True, refund_yen=600, error=ErrorView(401, "paper_out"), **TXN)),
    Sample("done-voucher", "done", _v("DONE", order=ORDER, total_yen=600, documents_total=2, documents_printed=1,
                                      receipt_printed=True, voucher_yen=300, voucher_code="wako-honcho-01-000042",
                                      error=ErrorView(402, "paper_jam"), **TXN)),
    Sample("thanks", "thanks", _v("IDLE"), _local("idle_step", "thanks")),
    Sample("error", "error", _v("ERROR", error=ErrorView(207, "pin_locked"))),
    Sample("out_of_service", "out_of_service", _v("OUT_OF_SERVICE", in_service=False,
                                                  out_of_service_reason="cityhall_unreachable",
                                                  error=ErrorView(501, "cityhall_unreachable"))),
    Sample("warning", "menu", _v("CHOOSING", warning_seconds_left=14, **TXN)),
    Sample("technician-login", "technician", _v("OUT_OF_SERVICE", in_service=False, out_of_service_reason="maintenance"),
           _tech(False)),
    Sample("technician", "technician", _v("OUT_OF_SERVICE", in_service=False, out_of_service_reason="maintenance"),
           _tech(True)),
)


def render(driver: Any, out: Path, languages: list[str], *, overlays: bool = True) -> list[Path]:
    """Show every sample in every language and save a screenshot of each. Returns the files."""
    app = driver.app
    written = []
    for lang in languages:
        for n, sample in enumerate(SAMPLES, start=1):
            app.local.technician = False
            app.apply_view(ViewState(state="IDLE", language=lang))  # start each from a clean idle
            app.lang = lang
            view = dataclasses.replace(sample.view, language=lang)
            app.apply_view(view)
            sample.local(app)  # the UI's own steps, as a resident's taps would have set them
            app.refresh()
            driver.wait_screen(sample.screen)
            written.append(driver.screenshot(out / lang / f"{n:02d}-{sample.name}.png"))
        if overlays:  # the language choice, over the menu
            app.local.technician = False
            app.apply_view(ViewState(state="CHOOSING", language=lang, **TXN))
            app.show_overlay("language")
            driver.step()
            written.append(driver.screenshot(out / lang / f"{len(SAMPLES) + 1:02d}-language.png"))
            app.hide_overlay("language")
        app.local.technician = False
        app.apply_view(ViewState(state="IDLE", language=lang))
    return written


def build_gallery_app() -> Any:
    from kiosk.config import ServiceHoursSection
    from kiosk.engine.hours import ServiceHours
    from screens.app import build_app
    from kiosk.credential import hash_credential
    return build_app(lambda intent: None, languages=("ja", "en", "zh", "ko", "vi", "pt"),
                     service_hours=ServiceHours.from_config(ServiceHoursSection()), city_name="和光市",
                     inquiry_phone="048-424-9100", technician_hash=hash_credential("0000", log2_n=4),
                     now=lambda: datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m screens.gallery", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/screens")
    parser.add_argument("--languages", default="ja,en")
    args = parser.parse_args(argv)
    from screens.display import VirtualDisplay
    display = None
    if not os.environ.get("DISPLAY"):
        display = VirtualDisplay().start()
        os.environ["DISPLAY"] = display.display
    try:
        from screens.environment import configure_kivy
        configure_kivy(800, 480)
        from screens.driver import AppDriver
        driver = AppDriver(build_gallery_app()).start()
        try:
            files = render(driver, Path(args.out), args.languages.split(","))
        except BaseException:  # Kivy sends sys.stderr to its (silenced) logger: report on the real one
            import traceback
            traceback.print_exc(file=sys.__stderr__)
            return 1
        for f in files:
            print(f)
        driver.app.stop()
    finally:
        if display is not None:
            display.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
