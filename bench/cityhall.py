"""City hall benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/cityhall.py [--rounds 200] [--skip-postgres]

1. Certificate rendering per type, in this process: first render (cold: fonts, templates) and warm
   (median of 20), and the PDF size. Targets: warm < 50 ms, PDF < 150 KB.
2. Issuance over loopback HTTP against a real `cityhall serve` on SQLite and on PostgreSQL (a private
   throwaway cluster): per round, challenge → authenticate (card signature made beforehand, not
   timed) → issue one 住民票の写し, with the production kiosk client. p50/p95 of authenticate, issue and
   the whole round. Target: issue p95 < 150 ms on SQLite.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from cityhall.devices import DeviceStore  # noqa: E402
from cityhall.storage import Database  # noqa: E402
from drivers.sim.pki import TestPKI  # noqa: E402
from kiosk.ports import Order, OrderLine  # noqa: E402
from sync.device_key import public_key_text  # noqa: E402
from sync.issuance_client import HttpCityHallClient  # noqa: E402
from tests.support.postgres import PostgresCluster, postgres_available  # noqa: E402
from tests.support.services import ManagedProcess, free_port, port_open  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def bench_render(registry: dict) -> None:
    from cityhall.documents import CertificateRequest, DocumentSigner, render_certificate

    signer = DocumentSigner.generate()
    resident = next(r for r in registry.values() if r["name"] == "広沢 恵子")
    cases = [("juminhyo", None, ("with_household", "with_honseki", "with_relationship")),
             ("kazei", 2026, ()), ("hikazei", 2026, ())]
    print("PDF rendering (this process)          first ms   warm p50 ms   warm p95 ms   size KB")
    for n, (cert_type, year, options) in enumerate(cases):
        def render(i: int):
            return render_certificate(CertificateRequest(cert_type, f"11229-2026-{n}{i:07d}",
                                                         datetime.now(timezone.utc), "和光市", "和光市長 柴崎 光子",
                                                         resident, year, options), signer)
        t = time.perf_counter()
        doc = render(0)
        first = (time.perf_counter() - t) * 1000
        warm = []
        for i in range(1, 21):
            t = time.perf_counter()
            render(i)
            warm.append((time.perf_counter() - t) * 1000)
        print(f"  {cert_type:<34} {first:9.1f}   {statistics.median(warm):11.1f}   {pct(warm, 95):11.1f}   "
              f"{len(doc.pdf) / 1024:7.1f}")


def bench_service(backend: str, database_url: str, world: Path, pki: TestPKI, cards: list, rounds: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix=f"bench-{backend[:2]}-"))
    config = directory / "cityhall.toml"
    config.write_text(f"""
[service]
data_dir = "{directory / 'data'}"
database_url = "{database_url if backend == 'postgresql' else ''}"
log_level = "warning"
[pki]
trusted_auth_ca_files = ["{pki.ca_cert_path}"]
crl_file = "{pki.crl_path}"
[registry]
path = "{ROOT / 'config' / 'demo-registry.json'}"
""")
    port = free_port()
    server = ManagedProcess([sys.executable, "-m", "cityhall.cli", "--config", str(config), "serve", "--port",
                             str(port)], name="cityhall", log_dir=directory, cwd=str(ROOT))
    server.start(ready=lambda: port_open("127.0.0.1", port), timeout=30)
    try:
        db = Database(database_url if backend == "postgresql" else f"sqlite:///{directory / 'data' / 'cityhall.sqlite3'}")
        key = Ed25519PrivateKey.generate()
        DeviceStore(db).add("kiosk-bench", public_key_text(key), datetime.now(timezone.utc))
        db.close()
        client = HttpCityHallClient(f"http://127.0.0.1:{port}", "kiosk-bench", key, retries=0, issue_timeout=60)
        auth_ms, issue_ms, round_ms = [], [], []
        for i in range(rounds + 5):
            card = cards[i % len(cards)]
            t0 = time.perf_counter()
            challenge = client.challenge()
            signature = card.private_key().sign(challenge.nonce, padding.PKCS1v15(), hashes.SHA256())
            t1 = time.perf_counter()
            session = client.authenticate(challenge, card.cert_der, signature)
            t2 = time.perf_counter()
            client.issue(session.session_id, Order((OrderLine("juminhyo", 1, 300),)), f"bench-{i}", "p")
            t3 = time.perf_counter()
            if i >= 5:  # the first rounds warm the server up
                auth_ms.append((t2 - t1) * 1000)
                issue_ms.append((t3 - t2) * 1000)
                round_ms.append((t3 - t0) * 1000)
        client.close()
        print(f"Issuance over HTTP on {backend} ({rounds} rounds)      p50 ms    p95 ms")
        for label, values in (("authenticate", auth_ms), ("issue (1 住民票)", issue_ms),
                              ("round incl. the card signature", round_ms)):
            print(f"  {label:<40} {statistics.median(values):7.1f}   {pct(values, 95):7.1f}")
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    registry = json.loads((ROOT / "config" / "demo-registry.json").read_text(encoding="utf-8"))
    bench_render(registry)
    world = Path(tempfile.mkdtemp(prefix="bench-pki-"))
    try:
        pki = TestPKI(world)
        cards = [pki.card(cn) for cn, r in registry.items() if r["status"] == "active"][:20]
        bench_service("sqlite", "", world, pki, cards, args.rounds)
        problem = None if not args.skip_postgres else "skipped (--skip-postgres)"
        problem = problem or postgres_available()
        if problem:
            print(f"PostgreSQL: not measured: {problem}")
        else:
            cluster = PostgresCluster.start()
            try:
                bench_service("postgresql", cluster.create_database("bench"), world, pki, cards, args.rounds)
            finally:
                cluster.stop()
    finally:
        shutil.rmtree(world, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
