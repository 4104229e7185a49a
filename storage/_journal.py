"""An undo journal that makes a change to one folder of a store all-or-nothing.

Before a change, :meth:`Journal.begin` records which files and folders exist
under the target folder and copies aside the files the change may rewrite.
:meth:`Journal.rollback` deletes everything the change added and puts the
copies back, so the folder is byte-for-byte as before;
:meth:`Journal.commit` just drops the journal.  A journal left behind by a
crash is found and undone by :func:`recover` the next time the folder is
opened for writing, unless the change it guarded had already committed.

The journal lives at ``<root>/.ivc-journal/<name>/`` beside the target folder
``<root>/<name>/`` and goes away with the commit or the rollback.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from storage._errors import StoreError

__all__ = ["Journal", "recover", "JOURNAL_DIR"]

logger = logging.getLogger(__name__)

JOURNAL_DIR = ".ivc-journal"


def _rel(path: str, root: str) -> str:
    return path[len(root) :].lstrip("/")


class Journal:
    """Undo journal for the folder ``root/name`` on an fsspec filesystem.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        Filesystem of the store.
    root : str
        The store's root path on ``fs`` (no protocol).
    name : str
        The folder under ``root`` that the change touches.
    """

    def __init__(self, fs: Any, root: str, name: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.name = name
        self.target = f"{self.root}/{name}"
        self.dir = f"{self.root}/{JOURNAL_DIR}/{name}"
        self._state: dict[str, Any] | None = None

    # -- lifecycle -------------------------------------------------------
    def begin(self, token: str, protect: Iterable[str] = ()) -> None:
        """Record the folder's state and save the files in ``protect``.

        Parameters
        ----------
        token : str
            Names the change; :func:`recover` asks whether it committed.
        protect : iterable of str
            Paths relative to the target folder that the change may rewrite
            (missing ones are skipped).
        """
        fs = self.fs
        if fs.exists(self.dir):
            raise StoreError(f"{self.dir}: a journal is already open; another change is in progress")
        existed = fs.exists(self.target)
        files: list[str] = []
        dirs: list[str] = []
        if existed:
            found = fs.find(self.target, withdirs=True, detail=True)
            for path, info in found.items():
                rel = _rel(path, self.target)
                if not rel:
                    continue
                (dirs if info["type"] == "directory" else files).append(rel)
        try:
            fs.makedirs(f"{self.dir}/saved", exist_ok=True)
            saved = []
            present = set(files)
            for rel in protect:
                if rel in present:
                    self._save(rel)
                    saved.append(rel)
        except BaseException:
            _remove_journal(fs, self.root, self.dir)
            raise
        self._state = {
            "token": token,
            "existed": existed,
            "files": sorted(files),
            "dirs": sorted(dirs),
            "saved": saved,
            "started": time.time(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        # The record is written last: a journal folder without it guards nothing yet.
        tmp = f"{self.dir}/journal.json.tmp"
        fs.pipe_file(tmp, json.dumps(self._state).encode())
        fs.mv(tmp, f"{self.dir}/journal.json")

    def commit(self) -> None:
        """Keep the change: drop the journal."""
        self._require()
        self._drop()

    def rollback(self) -> None:
        """Undo the change: the folder is as :meth:`begin` found it."""
        state = self._require()
        _undo(self.fs, self.target, state, f"{self.dir}/saved")
        self._drop()

    # -- helpers -----------------------------------------------------------
    def _save(self, rel: str) -> None:
        dest = f"{self.dir}/saved/{rel}"
        self.fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
        self.fs.cp_file(f"{self.target}/{rel}", dest)

    def _require(self) -> dict[str, Any]:
        if self._state is None:
            raise StoreError("journal not begun")
        return self._state

    def _drop(self) -> None:
        _remove_journal(self.fs, self.root, self.dir)
        self._state = None


def _remove_journal(fs: Any, root: str, jdir: str) -> None:
    if fs.exists(jdir):
        fs.rm(jdir, recursive=True)
    parent = f"{root}/{JOURNAL_DIR}"
    try:
        if fs.exists(parent) and not fs.ls(parent):
            fs.rmdir(parent)
    except OSError:  # another journal appeared meanwhile; leave the parent
        pass


def _undo(fs: Any, target: str, state: dict[str, Any], saved_root: str) -> None:
    if not state["existed"]:
        if fs.exists(target):
            fs.rm(target, recursive=True)
        return
    files = set(state["files"])
    dirs = set(state["dirs"])
    now = fs.find(target, withdirs=True, detail=True) if fs.exists(target) else {}
    new_files = []
    new_dirs = []
    for path, info in now.items():
        rel = _rel(path, target)
        if not rel:
            continue
        if info["type"] == "directory":
            if rel not in dirs:
                new_dirs.append(path)
        elif rel not in files:
            new_files.append(path)
    for path in new_files:
        fs.rm_file(path)
    for path in sorted(new_dirs, key=len, reverse=True):
        if fs.exists(path):
            fs.rm(path, recursive=True)
    for rel in state["saved"]:
        dest = f"{target}/{rel}"
        fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
        fs.cp_file(f"{saved_root}/{rel}", dest)


def recover(fs: Any, root: str, name: str, committed: Callable[[str], bool]) -> bool:
    """Finish what a crashed change left behind in ``root/name``.

    Parameters
    ----------
    committed : callable
        ``committed(token)`` tells whether the change named ``token`` reached
        its commit point; if so the journal is dropped, else the change is undone.

    Returns
    -------
    bool
        True if a journal was found.
    """
    root = root.rstrip("/")
    jdir = f"{root}/{JOURNAL_DIR}/{name}"
    if not fs.exists(jdir):
        return False
    record = f"{jdir}/journal.json"
    if fs.exists(record):
        state = json.loads(fs.cat_file(record))
        pid = state.get("pid")
        same_host = state.get("host") == socket.gethostname()
        if same_host and pid and pid != os.getpid() and _alive(pid) and time.time() - state.get("started", 0) < 86400:
            raise StoreError(
                f"{root}/{name}: another process (pid {pid}) is changing it; wait for it or remove {jdir}"
            )
        if committed(state["token"]):
            logger.info("journal of %s: change %s had committed; dropping the journal", name, state["token"])
        else:
            logger.warning("journal of %s: undoing interrupted change %s", name, state["token"])
            _undo(fs, f"{root}/{name}", state, f"{jdir}/saved")
    _remove_journal(fs, root, jdir)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
