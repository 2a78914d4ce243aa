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
