"""Talk to a running ESC/POS emulator's control port (tests, demos, a technician at a shell)."""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


class EscposControl:
    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout

    def _request(self, **request: Any) -> dict[str, Any]:
        with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
            sock.settimeout(self.timeout)
            with sock.makefile("rwb") as stream:
                stream.write(json.dumps(request).encode() + b"\n")
                stream.flush()
                answer = json.loads(stream.readline() or b"{}")
        if not answer.get("ok"):
            raise RuntimeError(f"escpos emulator refused {request}: {answer.get('error', 'no answer')}")
        return answer

    def set(self, **settings: Any) -> dict[str, Any]:
        """paper="ok"|"near_end"|"end", cover_open=bool, offline=bool, cutter_error=bool, stall=bool,
        cover_open_after=<raster bytes>."""
        return self._request(cmd="set", **settings)

    def paper_end(self) -> None:
        self.set(paper="end")

    def paper_near_end(self) -> None:
        self.set(paper="near_end")

    def open_cover(self, after_bytes: int | None = None) -> None:
        self.set(**({"cover_open_after": after_bytes} if after_bytes is not None else {"cover_open": True}))

    def stall(self, on: bool = True) -> None:
        self.set(stall=on)

    def reset(self) -> None:
        self._request(cmd="reset")

    def state(self) -> dict[str, Any]:
        return self._request(cmd="state")

    def receipts(self) -> list[Path]:
        return [Path(p) for p in self.state()["counters"]["receipts"]]

    def partial_receipts(self) -> list[Path]:
        return [Path(p) for p in self.state()["counters"]["partial_receipts"]]

    def counters(self) -> dict[str, Any]:
        return self.state()["counters"]
