"""Source trees of older revisions, for "before" figures measured in the same run as "after".

Copies of old functions patched into today's services stop meaning "before" as soon as the
rest of the system changes around them (the aggregator, the pool, the event loop). Instead,
a benchmark runs every service of the older revision as it was: ``source_tree(rev)`` checks
that revision out as a detached ``git worktree`` under ``bench/results/revisions/<sha>``
(git-ignored, reused by later runs), and the services start there with ``cwd`` and
``PYTHONPATH`` pointing at it (``tests.support.processes.ServiceProcess``). The venv, the
database schema (today's migrations) and the broker are today's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench.system import RESULTS_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]
REVISIONS_DIR = RESULTS_DIR / "revisions"


class UnknownRevision(ValueError):
    """The revision does not name a commit of this repository."""


def _git(*args: str) -> str:
    completed = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout.strip()


def full_sha(revision: str) -> str:
    """The commit a revision names; UnknownRevision when it names none."""
    completed = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0 or not completed.stdout.strip():
        raise UnknownRevision(f"{revision!r} is not a commit of {REPO_ROOT} (try `git log --oneline`)")
    return completed.stdout.strip()


def source_tree(revision: str) -> Path:
    """A detached worktree of ``revision`` (made once, reused after), for services to run from."""
    sha = full_sha(revision)
    path = REVISIONS_DIR / sha
    if (path / ".git").exists():
        # Reused only if it still is that commit, unedited: anything else must not pass for "before".
        if _git("-C", str(path), "rev-parse", "HEAD") != sha:
            raise RuntimeError(f"{path} is a worktree of another commit; `git worktree remove --force {path}`")
        if _git("-C", str(path), "status", "--porcelain", "--untracked-files=no"):
            raise RuntimeError(f"{path} has local edits; `git worktree remove --force {path}` to start afresh")
        return path
    REVISIONS_DIR.mkdir(parents=True, exist_ok=True)
    if path.exists():
        # What an interrupted `worktree add` left (no .git file): `worktree add` refuses a non-empty folder.
        shutil.rmtree(path)
    # --force: the path may still be registered from a worktree whose folder was deleted by hand.
    _git("worktree", "add", "--detach", "--force", str(path), sha)
    return path


def describe_revision(revision: str) -> dict[str, str]:
    """What a result records about the code that ran: short sha and commit subject."""
    sha = full_sha(revision)
    return {"revision": _git("rev-parse", "--short", sha), "subject": _git("log", "-1", "--format=%s", sha)}


def describe_source(source: Path | None) -> str | dict[str, str]:
    """Which code a result measured: this working tree, or the revision a worktree holds."""
    if source is None:
        return "working tree"
    if source.parent == REVISIONS_DIR:  # source_tree names each worktree by its full sha
        return describe_revision(source.name)
    return str(source)
