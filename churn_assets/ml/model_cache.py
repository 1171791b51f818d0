"""Atomic entries of the local model cache (CHURN_HOME/models).

An entry is built in a temporary sibling directory and renamed into place, so the
cache holds complete entries or none: a process killed mid-download leaves only its
temporary directory, which readers never look at and the next writer removes.

A writer holds an exclusive flock on a file inside its temporary directory for as long
as it writes; the lock dies with the process (even under kill -9), so a temporary
directory whose lock can be taken belongs to nobody and is removed, while one still
being written by another process (the scoring service and a Dagster run share the
cache) is left alone."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

PARTIAL_MARK = ".partial-"
LOCK_FILE = ".writer.lock"
# Written last inside the temporary directory: an entry without it predates atomic
# writes (a copy that may have been cut short) and is rebuilt.
COMPLETE_FILE = ".complete"


def is_complete(entry: Path) -> bool:
    return (entry / COMPLETE_FILE).is_file()


def _abandoned(partial: Path) -> bool:
    """Whether no live process holds the writer lock of a temporary directory."""
    try:
        handle = (partial / LOCK_FILE).open("a")
    except OSError:  # no lock file: the writer died before taking it, or it is gone
        return True
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def remove_abandoned(folder: Path) -> list[Path]:
    """Delete the temporary directories in folder that no live writer holds, and
    entries without their completion mark; returns what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in sorted(folder.iterdir()):
        if not path.is_dir():
            continue
        if PARTIAL_MARK in path.name:
            if _abandoned(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        elif not is_complete(path):
            _retire(path)
            removed.append(path)
    return removed


def _retire(entry: Path) -> None:
    """Move an incomplete entry out of the way (a rename, so a reader never sees it
    half deleted), then delete it."""
    retired = entry.with_name(f".{entry.name}{PARTIAL_MARK}retired-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        entry.rename(retired)
        shutil.rmtree(retired, ignore_errors=True)


def fill_atomically(entry: Path, fill: Callable[[Path], None]) -> Path:
    """Make `entry` by calling fill(temporary directory) and renaming the result into
    place; returns entry. When another process completes the same entry first, its
    copy wins and ours is dropped."""
    folder = entry.parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_abandoned(folder)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}{PARTIAL_MARK}", dir=folder))
    try:
        with (staging / LOCK_FILE).open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            fill(staging)
            (staging / COMPLETE_FILE).touch()
            try:
                staging.rename(entry)
            except OSError:
                if not is_complete(entry):
                    raise
                shutil.rmtree(staging, ignore_errors=True)  # a concurrent writer won
            else:
                (entry / LOCK_FILE).unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return entry
