"""A build cache is a tree the build wrote, packed and placed again as root: planted symlinks
must not let it read or write outside the build's own directories. A real redis-server and a
store on disk; no sandbox is needed to plant links."""
import os

import pytest
import redis

from gantry.actors.build.cache import BuildCache, CacheReport, Roots
from gantry.artifacts.blobstore import FsBlobStore
from gantry.artifacts.packing import OutputLimits
from gantry.state.caches import Caches


@pytest.fixture
def cache(redis_url, tmp_path):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.flushdb()
    lines = []
    c = BuildCache(Caches(r, lambda: 0), FsBlobStore(tmp_path / "store"), 64 << 10, OutputLimits(1 << 30, 1000),
                   lines.append)
    c.lines = lines
    return c


def attempt(tmp_path, n: int) -> tuple[Roots, os.PathLike]:
    base = tmp_path / f"attempt{n}"
    for d in ("src", "home", "scratch"):
        (base / d).mkdir(parents=True)
    return Roots(base / "src", base / "home"), base / "scratch"


def save(cache, roots, paths=("deps", "~/.ccache")) -> CacheReport:
    report = CacheReport()
    cache.save("p", "main", paths, roots, "b1", report)
    return report


def test_a_cache_round_trips_and_an_unchanged_one_uploads_nothing(cache, tmp_path):
    roots, _ = attempt(tmp_path, 1)
    (roots.workspace / "deps").mkdir()
    (roots.workspace / "deps" / "w.whl").write_bytes(os.urandom(200_000))
    (roots.home / ".ccache" / "a").mkdir(parents=True)
    (roots.home / ".ccache" / "a" / "o").write_text("object")
    assert save(cache, roots).savedBytes > 200_000
    assert save(cache, roots).savedBytes == 0
    roots2, scratch = attempt(tmp_path, 2)
    report = CacheReport()
    cache.restore("p", ["feature", "main"], ("deps", "~/.ccache"), roots2, scratch, report)
    assert report.hit and report.branch == "main" and report.restoredBytes > 200_000
    assert (roots2.workspace / "deps" / "w.whl").read_bytes() == (roots.workspace / "deps" / "w.whl").read_bytes()
    assert (roots2.home / ".ccache" / "a" / "o").read_text() == "object"


def test_a_cache_path_the_build_turned_into_a_link_is_not_saved(cache, tmp_path):
    roots, _ = attempt(tmp_path, 1)
    os.symlink("/etc", roots.workspace / "deps")
    (roots.home / ".ccache").mkdir()
    os.symlink("/root", roots.home / ".ccache" / "escape")   # a link leaving the cache, inside it
    report = save(cache, roots)
    assert report.savedBytes == 0 and cache.caches.get("p", "main") is None
    assert any("deps not saved" in line and "symlink" in line for line in cache.lines), cache.lines
    assert any("~/.ccache not saved" in line for line in cache.lines), cache.lines


def test_a_restore_does_not_write_through_links_the_commit_planted(cache, tmp_path):
    roots, _ = attempt(tmp_path, 1)
    (roots.workspace / "deps" / "sub").mkdir(parents=True)
    (roots.workspace / "deps" / "sub" / "f").write_text("x")
    (roots.workspace / "nested" / "dir").mkdir(parents=True)
    (roots.workspace / "nested" / "dir" / "f").write_text("y")
    save(cache, roots, ("deps", "nested/dir"))
    target = tmp_path / "outside"
    target.mkdir()
    roots2, scratch = attempt(tmp_path, 2)
    os.symlink(target, roots2.workspace / "deps")          # the commit holds a link where the cache goes
    os.symlink(target, roots2.workspace / "nested")        # and one on the way to another
    report = CacheReport()
    cache.restore("p", ["main"], ("deps", "nested/dir"), roots2, scratch, report)
    assert not report.hit and list(target.iterdir()) == []
    assert sum("not restored" in line for line in cache.lines) == 2, cache.lines
