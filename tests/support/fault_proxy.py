"""A TCP proxy on loopback that breaks the network on purpose, between a client (the kiosk's uploader)
and a server (city hall). The faults are Toxiproxy's, decided per request/response exchange on each
connection (a new exchange starts when the client speaks after the server did, so keep-alive
connections get a fresh draw per request):

    pass          forward both ways untouched
    drop          close the connection before forwarding anything (request never delivered)
    reset         forward part of the request, then reset both sides (TCP RST)
    hang          swallow the request and never answer (the client's read timeout must fire)
    slow          forward in small chunks with a delay between them (latency + low bandwidth)
    cut_response  deliver the whole request, let the server answer (it has committed), then reset the
                  client after at most a few bytes of the response: the outcome is lost to the client

    with FaultProxy(("127.0.0.1", server_port)) as proxy:
        proxy.set_mode("hang")                           # every exchange
        proxy.random_faults({"pass": 6, "drop": 1, "cut_response": 2}, seed=7)
        url = f"http://127.0.0.1:{proxy.port}"
        proxy.counts                                      # how often each fault was applied
        proxy.in_flight                                   # requests under way, not yet answered
"""
from __future__ import annotations

import random
import select
import socket
import struct
import threading
import time
from collections import Counter
from typing import Mapping

MODES = ("pass", "drop", "reset", "hang", "slow", "cut_response")
CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER 0), as a crashed peer or middlebox would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], *, connect_timeout: float = 2.0, slow_chunk: int = 2048,
                 slow_delay: float = 0.01) -> None:
        self.upstream = upstream
        self.connect_timeout = connect_timeout
        self.slow_chunk = slow_chunk
        self.slow_delay = slow_delay
        self.counts: Counter[str] = Counter()
        self.in_flight = 0           # exchanges whose request started and whose response has not
        self._mode = "pass"
        self._weights: list[tuple[str, float]] | None = None
        self._rng = random.Random(0)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name=f"fault-proxy-{self.port}", daemon=True)

    # --- control --------------------------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown fault {mode!r}; one of {MODES}")
        with self._lock:
            self._mode, self._weights = mode, None

    def random_faults(self, weights: Mapping[str, float], seed: int = 0) -> None:
        unknown = set(weights) - set(MODES)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {MODES}")
        with self._lock:
            self._weights = [(m, float(w)) for m, w in weights.items() if w > 0]
            self._rng = random.Random(seed)

    def _draw(self) -> str:
        with self._lock:
            if self._weights is None:
                mode = self._mode
            else:
                modes, weights = zip(*self._weights)
                mode = self._rng.choices(modes, weights)[0]
            self.counts[mode] += 1
            return mode

    def start(self) -> "FaultProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        _close(self._listener)
        with self._lock:
            open_sockets = list(self._sockets)
        for s in open_sockets:
            _close(s)
        self._thread.join(5)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- serving --------------------------------------------------------------------------------------

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._sockets.update(socks)

    def _untrack(self, *socks: socket.socket) -> None:
        with self._lock:
            self._sockets.difference_update(socks)
        for s in socks:
            _close(s)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=self.connect_timeout)
        except OSError:
            _reset(client)  # the server is down (restarting): the client sees a refused/reset connection
            self._untrack(client)
            return
        upstream.settimeout(None)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._track(upstream)
        try:
            self._pump(client, upstream)
        except OSError:
            pass
        finally:
            self._untrack(client, upstream)

    def _send(self, sock: socket.socket, data: bytes, slow: bool) -> None:
        if not slow:
            sock.sendall(data)
            return
        for start in range(0, len(data), self.slow_chunk):
            if self._stopped.is_set():
                return
            time.sleep(self.slow_delay)
            sock.sendall(data[start:start + self.slow_chunk])

    def _flight(self, delta: int) -> None:
        with self._lock:
            self.in_flight += delta

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        mode: str | None = None      # the fault of the current exchange
        server_spoke = True          # the next client bytes start a new exchange
        try:
            while not self._stopped.is_set():
                readable, _, _ = select.select([client, upstream], [], [], 0.2)
                if client in readable:
                    data = client.recv(CHUNK)
                    if not data:
                        return
                    if server_spoke:
                        mode, server_spoke = self._draw(), False
                        self._flight(+1)
                    if mode == "drop":
                        _close(client)
                        return
                    if mode == "reset":
                        upstream.sendall(data[: len(data) // 2])
                        _reset(upstream)
                        _reset(client)
                        return
                    if mode == "hang":
                        continue  # swallowed; the client waits for an answer that never comes
                    self._send(upstream, data, mode == "slow")
                if upstream in readable:
                    data = upstream.recv(CHUNK)
                    if not data:
                        return
                    if not server_spoke:
                        server_spoke = True
                        self._flight(-1)
                    if mode == "cut_response":
                        keep = random.randint(0, min(len(data) - 1, 40))
                        if keep:
                            client.sendall(data[:keep])
                        _reset(client)
                        return
                    self._send(client, data, mode == "slow")
        finally:
            if not server_spoke:
                self._flight(-1)
