"""Processes and ports on this machine, for the local stack: free loopback ports, each local
host's own loopback address, waiting on a condition, and what /proc says of a process."""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"


_handed_out: set[tuple[str, int]] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = HOST) -> int:
    """A port free now and never handed out before by this process: a port given to a server
    that has not bound it yet is free to the kernel, which may offer it again. Ports come from
    below the kernel's ephemeral range (and above Ray's worker ports): while a server restarts,
    any outgoing connection could otherwise take its port as its own local one (CI saw Redis
    refused its port after a kill)."""
    low = _ephemeral_low()
    while True:
        with socket.socket() as s:
            try:
                s.bind((host, random.randrange(20000, low) if low > 21000 else 0))
            except OSError:   # in use
                continue
            port = s.getsockname()[1]
        if (host, port) not in _handed_out:
            _handed_out.add((host, port))
            return port


def loopback(n: int) -> str:
    """The n-th local host's own address: 127.0.1.1, 127.0.1.2, ... (all of 127/8 is loopback)."""
    return f"127.0.{1 + (n - 1) // 254}.{1 + (n - 1) % 254}"


def wait_for(check, timeout_s: float, what: str, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(interval_s)


def bin_path(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state, ppid, ..., starttime at 19)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> list[tuple[int, str]]:
    """Every process below `pid`, each with its start time (so a reused pid is told apart)."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := proc_stat(int(entry))):
            children.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_group(pid: int, sig: int = signal.SIGTERM, grace_s: float = 10) -> None:
    """Stop the process group `pid` leads (see `stop_groups`)."""
    stop_groups([pid], sig, grace_s)


def stop_groups(pids: list[int], sig: int = signal.SIGTERM, grace_s: float = 10) -> None:
    """Stop the process groups these processes lead (each started in a session of its own), and
    every process below them that outlives its group (Ray puts each worker in a process group of
    its own): `sig` to all at once, SIGKILL to those left after `grace_s`. At once, because a Ray
    node whose head is gone waits out the whole grace."""
    below = [child for pid in pids for child in descendants(pid)]
    for s, wait in ((sig, grace_s), (signal.SIGKILL, 5)):
        for pid in pids:
            try:
                os.killpg(pid, s)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not any(alive(pid) for pid in pids):
            break
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)  # children left in the group
        except ProcessLookupError:
            pass
    for child, started in below:
        if (fields := proc_stat(child)) and fields[19] == started:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
