import os

import pytest

from gantry.actors.build.attempt import BuildFailed, open_output
from gantry.actors.build.buildconfig import ConfigError, read_file
from gantry.artifacts.safepath import UnsafePath, open_beneath, resolve_link, write_marker


@pytest.mark.parametrize("link,target,where", [
    ("a/l", "../b", "b"), ("l", ".", ""), ("a/b/l", "../../c/d", "c/d"), ("l", "x//y/./z", "x/y/z"),
])
def test_links_that_stay_inside_resolve(link, target, where):
    assert resolve_link(link, target, {link}) == where


@pytest.mark.parametrize("link,target,links,why", [
    ("l", "/etc", set(), "absolute"),
    ("a/l", "../..", set(), "outside"),
    ("l", "m/x", {"m"}, "through another symlink"),
    ("l", "m", {"m"}, "through another symlink"),
    ("l", "a/../m/../..", {"m"}, "through another symlink"),
])
def test_links_that_leave_or_chain_are_refused(link, target, links, why):
    with pytest.raises(UnsafePath, match=why):
        resolve_link(link, target, links | {link})


def test_open_beneath_follows_no_link(tmp_path):
    (tmp_path / "real" / "sub").mkdir(parents=True)
    os.symlink("/", tmp_path / "hostroot")
    os.symlink("real", tmp_path / "alias")
    root = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.close(open_beneath(root, "real/sub"))
        for rel in ("hostroot/etc", "alias/sub", "alias", "../x", "/etc"):
            with pytest.raises(UnsafePath):
                open_beneath(root, rel)
    finally:
        os.close(root)


def test_build_output_through_a_link_fails_the_build_naming_the_output(tmp_path):
    os.symlink("/", tmp_path / "hostroot")
    with pytest.raises(BuildFailed, match="output 'hostroot/root' leaves the checkout"):
        open_output(tmp_path, "hostroot/root")
    with pytest.raises(BuildFailed, match="was not produced"):
        open_output(tmp_path, "dist")


def test_gantry_toml_is_never_read_through_a_link(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("a-very-secret-first-line\n")
    checkout = tmp_path / "co"
    checkout.mkdir()
    os.symlink(secret, checkout / "gantry.toml")
    with pytest.raises(ConfigError, match="symlink") as e:
        read_file(checkout)
    assert "24" not in str(e.value) and "secret" not in str(e.value)


def test_markers_are_not_written_through_a_link(tmp_path):
    victim = tmp_path / "victim"
    rel = tmp_path / "rel"
    rel.mkdir()
    os.symlink(victim, rel / ".complete")
    fd = os.open(rel, os.O_RDONLY | os.O_DIRECTORY)
    try:
        write_marker(fd, ".complete")
    finally:
        os.close(fd)
    assert not victim.exists() and (rel / ".complete").is_file() and not (rel / ".complete").is_symlink()
