"""Paths that untrusted code controls, handled without ever following them.

A build's checkout and output, and a release extracted from an artifact, are trees that hostile
code may have filled with symlinks. A privileged process opens anything in them through
`open_beneath` (component by component from a directory fd, `O_NOFOLLOW` at every step), and
judges a symlink only by `resolve_link`, which never asks the file system.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import PurePosixPath

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafePath(Exception):
    pass


def relative_parts(rel: str) -> tuple[str, ...]:
    """The components of a path that must stay below its root; raises UnsafePath otherwise."""
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or "\0" in rel:
        raise UnsafePath(f"'{rel}' is not a path inside the tree")
    return tuple(x for x in p.parts if x != ".")


def open_beneath(root_fd: int, rel: str, flags: int = DIR_FLAGS) -> int:
    """Open `rel` below the directory `root_fd` following no symlink on the way or at the end;
    the last component is opened with `flags`. Raises UnsafePath for a symlink or a `..`,
    FileNotFoundError/NotADirectoryError when it is not there."""
    parts = relative_parts(rel)
    fd = os.dup(root_fd)
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        try:
            nfd = os.open(part, (flags if last else DIR_FLAGS) | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as e:
            if e.errno == errno.ELOOP or (e.errno == errno.ENOTDIR and _is_link(fd, part)):
                raise UnsafePath(f"'{rel}' leads through the symlink '{'/'.join(parts[:i + 1])}'") from None
            raise
        finally:
            os.close(fd)
        fd = nfd
    if not parts and flags != DIR_FLAGS:
        os.close(fd)
        raise UnsafePath("an empty path")
    return fd


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def resolve_link(link: str, target: str, links: set[str] | dict) -> str:
    """Where the symlink at `link` (a path relative to the root) points, relative to the root.

    Raises UnsafePath if the target is absolute, climbs above the root, or passes through or ends
    at another symlink of the tree (`links`): a chain of links is how a tree escapes a check
    that looks at one link at a time."""
    if target.startswith("/"):
        raise UnsafePath(f"symlink {link} -> {target} points outside the tree (absolute)")
    where = list(PurePosixPath(link).parent.parts)
    if where == ["."]:
        where = []
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not where:
                raise UnsafePath(f"symlink {link} -> {target} points outside the tree")
            where.pop()
            continue
        where.append(part)
        if "/".join(where) in links:
            raise UnsafePath(f"symlink {link} -> {target} goes through another symlink ({'/'.join(where)})")
    return "/".join(where)


def check_links(links: dict[str, str]) -> None:
    """Every symlink of a tree ({path: target}) stays inside it and goes through no other."""
    for link, target in links.items():
        resolve_link(link, target, links)


def write_marker(dir_fd: int, name: str, data: bytes = b"") -> None:
    """Create or replace a small file in a directory without following a link planted there."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
