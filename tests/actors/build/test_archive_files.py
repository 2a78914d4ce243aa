"""The archive's file format and reader, on the filesystem blob store (no Redis)."""
import json

from gantry import cursor as listing
from gantry.archive.files import ArchiveReader, month_of, partition, to_parquet
from gantry.artifacts.blobstore import FsBlobStore

JAN, FEB = 1767225600000, 1769904000000   # 2026-01-01 and 2026-02-01 UTC


def rec(ms: int, i: int) -> dict:
    return {"buildID": f"{i:032x}", "projectName": "shop", "commitSHA": "c" * 40, "buildStatus": "SUCCEEDED",
            "createdAt": str(ms), "buildDetails": "{}", "retries": "0"}


def test_month_partition():
    assert month_of(JAN) == "2026-01" and month_of(FEB - 1) == "2026-01" and month_of(FEB) == "2026-02"
    assert partition("shop", "2026-01") == "archive/builds/project=shop/month=2026-01/"


def test_pages_across_months_and_files_without_repeats(tmp_path):
    blobs = FsBlobStore(tmp_path)
    jan = [rec(JAN + i * 1000, i) for i in range(5)]
    feb = [rec(FEB + i * 1000, 10 + i) for i in range(3)]
    blobs.put(partition("shop", "2026-01") + "a.parquet", to_parquet([(r, [], b"log") for r in jan[:3]]))
    blobs.put(partition("shop", "2026-01") + "b.parquet", to_parquet([(r, [], b"") for r in jan[2:]]))  # jan[2] twice
    blobs.put(partition("shop", "2026-02") + "a.parquet", to_parquet([(r, [{"region": "x"}], b"") for r in feb]))
    reader = ArchiveReader(blobs)
    want = [listing.key(int(r["createdAt"]), r["buildID"]) for r in sorted(jan + feb, key=lambda r: -int(r["createdAt"]))]
    seen, cursor = [], None
    while True:
        page = reader.page("shop", 3, cursor)
        items, cursor = listing.page(list(page), 2)
        seen += items
        if not cursor:
            break
    assert seen == want
    got, repl, log = reader.get(partition("shop", "2026-01") + "a.parquet", jan[0]["buildID"])
    assert got == jan[0] and repl == [] and log == b"log"
    assert reader.get(partition("shop", "2026-02") + "a.parquet", feb[1]["buildID"])[1] == [{"region": "x"}]
    assert reader.page("other", 10, None) == {}
    assert json.loads(json.dumps(reader.page("shop", 1, None)))  # summaries are plain JSON
