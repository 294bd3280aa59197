"""Serving an API from several uvicorn worker processes on one port (API_WORKERS > 1)."""

from __future__ import annotations

import socket

import uvicorn
from uvicorn.supervisors import Multiprocess


class WorkersConfig(uvicorn.Config):
    """uvicorn's settings for several worker processes, whose shared listening socket says it is TCP."""

    def bind_socket(self) -> socket.socket:
        """uvicorn's listening socket, re-made with its protocol read from the kernel (IPPROTO_TCP for TCP).

        asyncio turns Nagle's algorithm off only on connections accepted from a socket that says it is TCP, and
        uvicorn makes its own with protocol 0: with several workers every keep-alive response then waited for
        the client's delayed ACK, about 40 ms (uvicorn issue #3149; a single worker binds otherwise and is not
        affected)."""
        sock = super().bind_socket()
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return sock
        tcp = socket.socket(fileno=sock.detach())  # family, type and protocol as the kernel has them
        tcp.set_inheritable(True)
        return tcp


def serve_in_workers(config: WorkersConfig) -> None:
    """Bind the port and run config.workers processes serving config.app until a signal stops them."""
    Multiprocess(config, sockets=[config.bind_socket()]).run()
