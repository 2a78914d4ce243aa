"""A simulated (or predicted) deployment's timeline as a picture: hosts staged and active over
time, per region, with the waves marked."""
from __future__ import annotations

from collections import defaultdict

from gantry.statuses import DcPhase


def plot(result: dict, path: str, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")   # files only, no display
    import matplotlib.pyplot as plt

    series = defaultdict(lambda: ([], [], []))
    for t, region, staged, active in result["timeline"]:
        ts, ss, as_ = series[region]
        ts.append(t)
        ss.append(staged)
        as_.append(active)
    fig, ax = plt.subplots(figsize=(10, 5.5))
    colors = plt.get_cmap("tab10")
    for i, (region, (ts, ss, as_)) in enumerate(sorted(series.items())):
        ax.plot(ts, ss, linestyle="--", color=colors(i % 10), linewidth=1)
        ax.plot(ts, as_, color=colors(i % 10), linewidth=1.6, label=region)
    waves = {}
    for t, region, _dc, what in result.get("marks", []):
        if what.endswith(DcPhase.ROLLING) or what.endswith(DcPhase.DONE):
            waves.setdefault((region, what), t)   # each region's first datacenter to get there
    for (region, what), t in sorted(waves.items(), key=lambda kv: kv[1]):
        ax.axvline(t, color="grey", alpha=0.25, linewidth=0.8)
    if result.get("stageSeconds"):
        ax.axvline(result["stageSeconds"], color="black", linestyle=":", label="all staged")
    ax.set_xlabel("seconds since the build was done")
    ax.set_ylabel("hosts (dashed: staged; solid: active on the new build)")
    ax.set_title(title or f"{result['hosts']:,} hosts, {result['regions']} regions, "
                          f"{result['sizeBytes'] / 1e9:g} GB: {result['status']} in {result['totalSeconds']} s")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax.grid(alpha=0.2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
