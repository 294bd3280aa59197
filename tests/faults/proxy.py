"""A TCP proxy in front of a real server that a fault test switches between passing, refusing connections and a
black hole (accepts connections and never answers), on the same port throughout."""

from __future__ import annotations

import contextlib
import socket
import threading

from deploy.processes import free_port

LOCALHOST = "127.0.0.1"


class FaultProxy:
    """Forwards LOCALHOST:port to target in mode "pass"; "refuse" closes the listener and every live connection;
    "blackhole" accepts connections and holds them silent (live ones stop forwarding too)."""

    def __init__(self, target: str, port: int | None = None) -> None:
        host, target_port = target.rsplit(":", 1)
        self._target = (host, int(target_port))
        self.port = port or free_port()
        self.mode = "refuse"
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None

    @property
    def endpoint(self) -> str:
        """host:port clients should use."""
        return f"{LOCALHOST}:{self.port}"

    def set(self, mode: str) -> None:
        """Switch to "pass", "refuse" or "blackhole"; live connections go silent in a black hole, are dropped otherwise."""
        if mode not in ("pass", "refuse", "blackhole"):
            raise ValueError(mode)
        with self._lock:
            sockets, self._sockets = (set(), self._sockets) if mode == "blackhole" else (self._sockets, set())
            self.mode = mode
        for sock in sockets:
            _close(sock)
        if mode == "refuse":
            listener, self._listener = self._listener, None
            if listener is not None:
                _close(listener)
        elif self._listener is None:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((LOCALHOST, self.port))
            listener.listen(64)
            self._listener = listener
            threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        """Refuse from now on and release the port."""
        self.set("refuse")

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                mode = self.mode
                self._sockets.add(client)
            if mode == "blackhole":
                continue  # held open, never read from nor answered
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.add(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self.mode != "pass":
                    return  # black hole from now on: stop forwarding, keep quiet
                sink.sendall(data)
        except OSError:
            pass
        if self.mode == "pass":
            # One side hung up: end the pair, or both ends (and the server's thread) stay open until the next
            # mode switch, and a long run exhausts the file descriptors of the test process and of moto.
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
