"""Real git repositories for the benchmarks: one commit per build command."""
from __future__ import annotations

import subprocess
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=bench@gantry", "-c", "user.name=bench", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def commit_build(repo: Path, command: str, timeout_s: int | None = None, files: dict[str, str] | None = None) -> str:
    """Commit a gantry.toml that builds with `command` (creating the repository if needed); returns the SHA."""
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    for name, text in (files or {}).items():
        (repo / name).write_text(text)
    toml = f'[build]\ncommand = "{command}"\noutput = "dist"\n'
    (repo / "gantry.toml").write_text(toml + (f"timeout = {timeout_s}\n" if timeout_s else ""))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", command[:60])
    return git(repo, "rev-parse", "HEAD")
