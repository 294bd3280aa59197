"""deploy.processes.free_port: the ports it hands out while their processes start."""

from __future__ import annotations

import socket
import subprocess
import sys

from deploy.processes import cluster_env, free_port

DRAWS = 300
DRAW = f"from deploy.processes import free_port\nprint(' '.join(str(free_port()) for _ in range({DRAWS})))"


def test_two_processes_drawing_ports_at_once_never_get_the_same_one():
    # Random draws from the ~12,000 ports below the ephemeral range would repeat: 600 draws give about 15
    # pairs on average. Two test workers starting clusters at the same moment met exactly that in CI.
    child = subprocess.Popen(
        [sys.executable, "-c", DRAW], env=cluster_env({}), stdout=subprocess.PIPE, text=True
    )
    mine = [free_port() for _ in range(DRAWS)]
    theirs = [int(port) for port in child.communicate(timeout=60)[0].split()]
    assert child.returncode == 0
    assert len(theirs) == DRAWS
    assert len(set(mine) | set(theirs)) == 2 * DRAWS


def test_a_handed_out_port_is_free_to_bind():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
