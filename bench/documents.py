"""Certificate PDF benchmark: render time cold (fresh process) and warm, verification time, PDF size.

    .venv/bin/python bench/documents.py [--rounds 50]

Every sample of cityhall/documents/samples.py, including the 2-sheet 6-person household
("juminhyo-household-6"). Targets: issue 4, warm render under 50 ms and PDF under 150 KB; issue 14, the
2-sheet household under 80 ms warm and 200 KB. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_COLD = """
import json, sys, time
t0 = time.perf_counter()
from cityhall.documents import DocumentSigner, render_certificate
from cityhall.documents.samples import SAMPLE_REQUESTS
signer = DocumentSigner.generate()
t1 = time.perf_counter()
render_certificate(SAMPLE_REQUESTS[sys.argv[1]], signer)
t2 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1000, "first_render_ms": (t2 - t1) * 1000}))
"""


def _cold(cert_type: str) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", _COLD, cert_type], capture_output=True, check=True,
                            timeout=120, cwd=REPO)
    return json.loads(result.stdout)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="warm renders per type (default 50)")
    args = parser.parse_args(argv)

    from cityhall.documents import DocumentSigner, render_certificate, verify_document
    from cityhall.documents.samples import SAMPLE_REQUESTS

    signer = DocumentSigner.generate()
    keys = signer.public_keys()
    print(f"{'document':<24} {'cold ms':>8} {'import ms':>9} {'warm p50':>9} {'warm p95':>9} "
          f"{'verify p50':>10} {'size KB':>8}")
    for cert_type, request in SAMPLE_REQUESTS.items():
        cold = _cold(cert_type)
        render_certificate(request, signer)                       # warm the font and caches
        renders, verifies = [], []
        document = None
        for _ in range(args.rounds):
            start = time.perf_counter()
            document = render_certificate(request, signer)
            renders.append((time.perf_counter() - start) * 1000)
        for _ in range(max(5, args.rounds // 5)):
            start = time.perf_counter()
            verify_document(document.pdf, keys)
            verifies.append((time.perf_counter() - start) * 1000)
        print(f"{cert_type:<24} {cold['first_render_ms']:8.1f} {cold['import_ms']:9.1f} "
              f"{statistics.median(renders):9.1f} {_percentile(renders, 0.95):9.1f} "
              f"{statistics.median(verifies):10.1f} {len(document.pdf) / 1024:8.1f}")
    print("targets: warm render < 50 ms, size < 150 KB (cold = first render in a fresh process, "
          "after imports; it includes loading IPAexMincho and building the background tile)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
