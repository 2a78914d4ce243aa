"""Join cgroups, set rlimits, drop to an unprivileged user, then exec a command. Run as
`python -m gantry.launch` by a build's `sandbox.Sandbox` (to exec bubblewrap) and by a host's
installer (to exec a project's hooks in its own cgroup, as its own uid).

A separate process (not a preexec_fn) because the processes that start them are threaded.
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
    ap.add_argument("--uid", type=int)
    ap.add_argument("--gid", type=int)
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
    if a.uid is not None:
        os.setgroups([])
        os.setgid(a.gid if a.gid is not None else a.uid)
        os.setuid(a.uid)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
