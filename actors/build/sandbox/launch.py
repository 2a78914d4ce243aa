"""Last step before a sandboxed build: join cgroups, set rlimits, drop to an unprivileged user,
then exec bubblewrap. Run as `python -m gantry.actors.build.sandbox.launch` by `sandbox.Sandbox`.

A separate process (not a preexec_fn) because the Ray worker that starts a build is threaded.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys

RLIMITS = {"as": resource.RLIMIT_AS, "nproc": resource.RLIMIT_NPROC, "fsize": resource.RLIMIT_FSIZE,
           "core": resource.RLIMIT_CORE, "nofile": resource.RLIMIT_NOFILE, "cpu": resource.RLIMIT_CPU}


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cgroup-procs", action="append", default=[])
    ap.add_argument("--rlimit", action="append", default=[], help="name=value")
    ap.add_argument("--uid", type=int, required=True)
    ap.add_argument("--gid", type=int, required=True)
    ap.add_argument("--seccomp-file")
    ap.add_argument("--args-file", help="NUL-separated bubblewrap options (the build's environment)")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command

    for procs in a.cgroup_procs:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    for spec in a.rlimit:
        name, value = spec.split("=", 1)
        resource.setrlimit(RLIMITS[name], (int(value), int(value)))
    # Opened here, as root, before the drop: bubblewrap reads them from these fds.
    for option, path in (("--seccomp", a.seccomp_file), ("--args", a.args_file)):
        if path:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            os.set_inheritable(fd, True)
            command = [command[0], option, str(fd)] + command[1:]
    os.setgroups([])
    os.setgid(a.gid)
    os.setuid(a.uid)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
