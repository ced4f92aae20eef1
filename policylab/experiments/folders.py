"""Results folders: safe default names, one experiment per folder, one writer at a time.

- :func:`slug` turns text from a file (a scenario's name) into one safe path component,
  so a default output folder always lies directly under ``outputs/``.
- :class:`FolderLock` is an exclusive ``flock`` on ``OUT/.lock``: the kernel releases
  it when the process ends, however it ends (SIGKILL included), so a stale lock never
  blocks anyone; a second process trying to write the folder is refused at once.
- :func:`claim` makes a folder ready for one experiment: a folder holds the results
  of one configuration; a different one is refused unless ``force``, which first
  removes the old contents, so no stale file (an old brief, a sweep's curves) remains.
- :class:`HeldInterrupts` holds Ctrl-C while a file is being written, so that an
  interrupt never leaves a run counted but not saved, or saved but not counted.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import threading
from pathlib import Path

from policylab.errors import InputError

OUTPUTS = Path("outputs")
LOCK = ".lock"
MANIFEST = "manifest.json"
STAGED = (".runs", "experiment.json")  # an interrupted experiment's staged runs (compare.Staging)
MAX_SLUG = 64


def slug(text: str, fallback: str = "scenario") -> str:
    """``text`` as one path component: lower-case ASCII letters, digits, ``-``, ``_`` and
    ``.``, at most MAX_SLUG characters, never starting or ending with ``.``, ``-`` or ``_``
    (so never ``..``); ``fallback`` if nothing is left."""
    s = re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-._")[:MAX_SLUG].strip("-._")
    return s or fallback


class FolderLock:
    """Exclusive lock of a results folder by this process (re-entrant within it).

    Created with the folder if need be; raises InputError at once if another process
    holds it. The lock file keeps the holder's process id (for the error message) and
    is removed on release, while still locked; a process that locked a file already
    removed sees it (the path no longer names its file) and locks the new one instead.
    A process killed outright leaves an unlocked ``.lock``, which nothing minds.
    """

    _held: dict[str, list] = {}  # lock path -> [open file, depth]

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.key = str(self.folder.absolute() / LOCK)

    def __enter__(self) -> FolderLock:
        held = self._held.get(self.key)
        if held is not None:
            held[1] += 1
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            f = open(self.key, "a+")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                pid = f.read(20).strip()
                f.close()
                who = f" (process {pid})" if pid.isdigit() else ""
                raise InputError(f"--out: {self.folder} is being written by another policylab process{who}; "
                                 "allowed: another --out folder, or wait until that process ends") from None
            try:
                same = os.stat(self.key).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            f.close()
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._held[self.key] = [f, 1]
        return self

    def __exit__(self, *exc) -> None:
        held = self._held[self.key]
        held[1] -= 1
        if held[1] == 0:
            del self._held[self.key]
            Path(self.key).unlink(missing_ok=True)
            held[0].close()  # releases the flock


def owner(folder: Path) -> str | None:
    """The config hash of the experiment whose results ``folder`` holds ("" for a results
    folder that does not record one, or an interrupted one), None if it holds none."""
    try:
        return str(json.loads((folder / MANIFEST).read_text()).get("config_hash") or "")
    except (OSError, ValueError, AttributeError):
        pass
    return "" if (folder / STAGED[0] / STAGED[1]).is_file() else None


def claim(folder: Path, config_hash: str, force: bool) -> None:
    """Make ``folder`` (locked by the caller) ready for a new experiment with ``config_hash``.

    Empty (but for the lock): nothing to do. The results of the same configuration are
    replaced (their files removed first). An interrupted experiment, or the results of
    another configuration, are removed with ``force`` and refused without it. A folder
    of other files is refused even with ``force``: nothing but results is ever deleted.
    """
    entries = [p for p in folder.iterdir() if p.name != LOCK]
    if not entries:
        return
    found = owner(folder)
    staged = (folder / STAGED[0] / STAGED[1]).is_file()
    if found is None:
        raise InputError(f"--out: {folder} holds files that are not results of policylab compare or sweep; "
                         "allowed: a new or empty folder, or a results folder")
    if not force and staged:
        runs = len(list((folder / STAGED[0]).glob("*.pkl")))
        raise InputError(f"--out: {folder} holds an interrupted experiment ({runs} finished runs); allowed: "
                         "--resume to continue it, --force to discard it, or another --out folder")
    if not force and found != config_hash:
        raise InputError(f"--out: {folder} holds the results of a different experiment (another scenario, rule "
                         "sets, seeds or population); allowed: --force to replace them, or another --out folder")
    last = (MANIFEST, STAGED[0])  # the folder stays recognisable until everything else is gone
    with HeldInterrupts():
        for p in sorted(entries, key=lambda p: p.name in last):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()


class HeldInterrupts:
    """Within the block, Ctrl-C (SIGINT) is held; when the block ends it is delivered
    (``deliver``) or dropped (``held`` tells whether one came).

    Only in the main thread (the only one signals reach) and only over a handler set
    from Python; elsewhere the block runs unchanged.
    """

    def __init__(self, deliver: bool = True):
        self.deliver = deliver

    def __enter__(self) -> HeldInterrupts:
        self.held, self.old = False, None
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not None:
            self.old = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum, frame) -> None:
        self.held = True

    def __exit__(self, *exc) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            if self.held and self.deliver and exc[0] is None:
                signal.raise_signal(signal.SIGINT)
