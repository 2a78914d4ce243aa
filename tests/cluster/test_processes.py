"""The local stack's process helpers (no Ray)."""
import socket

from gantry.cluster import processes


def test_free_port_never_hands_out_a_port_twice(monkeypatch):
    """`gantry up` picks several ports before any server binds them: the kernel offered the GCS's
    port again for the dashboard agent, and the Ray head would not start."""
    offered = iter([40001, 40001, 40002])

    class Kernel(socket.socket):
        def getsockname(self):
            return ("127.0.0.1", next(offered))
    monkeypatch.setattr(processes.socket, "socket", Kernel)
    assert [processes.free_port(), processes.free_port()] == [40001, 40002]


def test_free_ports_come_from_below_the_kernels_ephemeral_range():
    """While a server restarts, an outgoing connection may take its port as its local one if the
    port is in the ephemeral range (CI saw a killed Redis refused its own port)."""
    low = processes._ephemeral_low()
    ports = [processes.free_port() for _ in range(50)]
    assert all(20000 <= p < low for p in ports) and len(set(ports)) == 50
