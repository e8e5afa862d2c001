"""Touch UI figures, printed (no asserts). Each measurement runs in its own process on a private Xvfb:

  - cold start: process start -> the idle screen drawn, for the kiosk app (real Engine on its thread,
    in-process fakes) and for a bare Kivy app (one Label), and their ratio (target: within 2x);
  - RSS after 1 and after N scripted transactions (target: under 250 MB, growth under 10 %);
  - the longest frame that switched screens during those transactions.

Transactions are driven by touches dispatched through the window (not xdotool, to keep 100 of them
quick) on the real app and engine: card, PIN, kazei / 1 copy, cash 500 yen, finish.

    .venv/bin/python bench/ui.py [--transactions 100] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- children -------------------------------------------------------------------------------------

def child_bare() -> dict[str, float]:
    from screens.environment import configure_kivy
    configure_kivy(800, 480)
    from kivy.app import App
    from kivy.base import EventLoop, runTouchApp
    from kivy.uix.label import Label

    class Bare(App):
        def build(self) -> Label:
            return Label(text="hello")
    app = Bare()
    app._run_prepare()
    runTouchApp(embedded=True)
    EventLoop.idle()
    EventLoop.window.mainloop()
    return {"drawn_at": time.time(), "rss_mb": rss_mb()}


def _kiosk_app(tmp: Path):  # type: ignore[no-untyped-def]
    import threading

    from screens.app import attach_engine, build_app
    from screens.driver import AppDriver
    from tests.ui.conftest import LANGUAGES, make_kiosk
    k = make_kiosk(tmp)
    app = build_app(k.engine.submit, languages=LANGUAGES, city_name="和光市", now=k.clock.now)
    attach_engine(app, k.engine)
    k.thread = threading.Thread(target=k.engine.run, args=(k.stop,), daemon=True)
    k.thread.start()
    return k, AppDriver(app, use_xdotool=False)


def child_cold() -> dict[str, float]:
    from screens.environment import configure_kivy
    configure_kivy(800, 480)
    with tempfile.TemporaryDirectory() as tmp:
        k, driver = _kiosk_app(Path(tmp))
        driver.start()
        driver.wait_screen("idle")
        drawn = time.time()
        k.stop.set()
        return {"drawn_at": drawn, "rss_mb": rss_mb()}


def child_soak(transactions: int) -> dict[str, float]:
    os.environ["KCFG_GRAPHICS_MAXFPS"] = "0"  # no frame-rate sleep inside the frames we time
    from screens.environment import configure_kivy
    configure_kivy(800, 480)
    from tests.fakes import GOOD_PIN
    with tempfile.TemporaryDirectory() as tmp:
        k, d = _kiosk_app(Path(tmp))
        app = d.app
        app.guard_seconds = 0.0
        d.start()
        longest = {"ms": 0.0, "to": ""}
        plain_step = d.step

        def timed_step() -> None:
            before = app.screen
            t = time.perf_counter()
            plain_step()
            ms = (time.perf_counter() - t) * 1000
            if app.screen != before and ms > longest["ms"]:
                longest.update(ms=ms, to=f"{before}->{app.screen}")
        d.step = timed_step  # type: ignore[method-assign]
        figures: dict[str, float] = {}
        for n in range(1, transactions + 1):
            d.wait_screen("idle")
            d.tap("idle.start")
            d.wait_screen("place_card")
            k.card.place()
            d.wait_screen("pin")
            for digit in GOOD_PIN:
                d.tap(f"pin.key.{digit}")
            d.tap("pin.ok")
            d.wait_screen("remove_card")
            k.card.remove()
            d.wait_screen("menu")
            d.tap("menu.offer.kazei")
            d.tap("options.next")
            d.tap("copies.next")
            d.wait_screen("fee")
            d.tap("fee.pay")
            d.tap("payment.cash")
            d.wait_screen("cash")
            k.cash.insert(k.payment_key(), 500)
            d.wait_screen("done", timeout=20)
            d.tap("done.finish")
            d.wait_screen("thanks")
            app.go("idle")  # skip the thank-you screen's few seconds
            if n == 1:
                figures["rss_after_1_mb"] = rss_mb()
        figures["rss_after_n_mb"] = rss_mb()
        figures["longest_transition_ms"] = longest["ms"]
        figures["longest_transition"] = longest["to"]  # type: ignore[assignment]
        k.stop.set()
        return figures


# --- parent -----------------------------------------------------------------------------------------

def run_child(display: str, *args: str) -> tuple[dict[str, float], float]:
    env = {**os.environ, "DISPLAY": display, "PYTHONPATH": str(ROOT)}
    started = time.time()
    out = subprocess.run([sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True,
                         timeout=1800, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"bench child {args} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs="*")
    args = parser.parse_args()
    if args.child is not None:
        kind = args.child[0]
        try:
            result = child_bare() if kind == "bare" else child_cold() if kind == "cold" else child_soak(int(args.child[1]))
        except BaseException:  # Kivy redirects sys.stderr to its (silenced) logger: report on the real one
            import traceback
            traceback.print_exc(file=sys.__stderr__)
            return 1
        print(json.dumps(result))
        return 0
    from screens.display import VirtualDisplay
    with VirtualDisplay(1024, 768) as display:
        cold, bare = [], []
        for _ in range(args.runs):
            for kind, into in (("bare", bare), ("cold", cold)):
                result, started = run_child(display.display, kind)
                into.append((result["drawn_at"] - started, result["rss_mb"]))
        kiosk_s, bare_s = statistics.median(c[0] for c in cold), statistics.median(b[0] for b in bare)
        print(f"cold start to idle screen:  {kiosk_s:.2f} s   (median of {args.runs}; RSS {cold[0][1]:.0f} MB)")
        print(f"bare Kivy app first frame:  {bare_s:.2f} s   (RSS {bare[0][1]:.0f} MB)")
        print(f"ratio kiosk / bare:         {kiosk_s / bare_s:.2f}x   (target <= 2x)")
        soak, _ = run_child(display.display, "soak", str(args.transactions))
        growth = (soak["rss_after_n_mb"] / soak["rss_after_1_mb"] - 1) * 100
        print(f"RSS after 1 transaction:    {soak['rss_after_1_mb']:.0f} MB")
        print(f"RSS after {args.transactions} transactions: {soak['rss_after_n_mb']:.0f} MB   "
              f"(growth {growth:+.1f} %, targets < 250 MB and < 10 %)")
        print(f"longest screen-switch frame: {soak['longest_transition_ms']:.1f} ms ({soak['longest_transition']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
