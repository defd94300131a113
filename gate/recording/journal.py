"""The receipt journal: a receipt is on local disk (appended, fsynced) before its visitor hears of it.

Each gate process appends to a file of its own in the spool folder (``receipts-<pid>-<ms>-<n>.jsonl``,
one receipt as JSON per line) and holds an exclusive flock on the file it appends to, so no sibling
worker takes it while it grows. At each flush the file is closed and a new one begun (``rotate``); a
closed file is deleted once the store has taken its receipts. What a crash, a kill -9 or a store
outage at shutdown leaves behind is read at the next start by whichever process locks it first, and
written again: receipts carry their own id, so a receipt written twice is stored once.

Synchronous and stdlib only: the recorder calls it from a worker thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .store import Receipt

log = logging.getLogger("gate.journal")

PATTERN = "receipts-*"  # also the spool files of earlier versions, written at shutdown


class Journal:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._lines = 0
        self._seq = 0

    def append(self, receipt: Receipt, then: Callable[[Receipt], None]) -> None:
        """Append and fsync one receipt, then call ``then(receipt)`` under the same lock (so a rotation
        never separates a receipt from the file that holds it). OSError when it cannot be kept."""
        line = (json.dumps(receipt.as_dict(), ensure_ascii=False) + "\n").encode()
        with self._lock:
            f = self._file or self._open()
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
            self._lines += 1
            then(receipt)

    def rotate(self, take: Callable[[], list[Receipt]]) -> tuple[list[Receipt], list[Path]]:
        """``take()``'s receipts and the closed file that holds them (none when nothing was appended)."""
        with self._lock:
            receipts = take()
            if self._file is None or not self._lines:
                return receipts, []
            assert self._path is not None
            path = self._path
            self.close_file()
            return receipts, [path]

    def close_file(self) -> None:
        if self._file is not None:
            self._file.close()  # the lock goes with it: from now on a sibling may replay it (harmless)
        self._file, self._path, self._lines = None, None, 0

    def close(self) -> None:
        with self._lock:
            self.close_file()

    def _open(self) -> IO[bytes]:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        name = f"receipts-{os.getpid()}-{int(time.time() * 1000)}-{self._seq}.jsonl"
        # Locked under a name no replay looks at, then renamed: a sibling never sees it unlocked.
        temp = self.folder / ("." + name)
        f = temp.open("ab")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            temp.rename(self.folder / name)
        except OSError:
            f.close()
            raise
        self._file, self._path, self._lines = f, self.folder / name, 0
        return f


def replay(folder: Path) -> tuple[list[Receipt], list[Path]]:
    """Receipts of journal (and old spool) files no live process holds, and those files."""
    receipts: list[Receipt] = []
    paths: list[Path] = []
    if not folder.is_dir():
        return receipts, paths
    for path in sorted(folder.glob(PATTERN)):
        try:
            with path.open("rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: its writer is alive
                data = f.read()
        except OSError:
            continue
        for line in data.splitlines():  # a last line cut by a crash was never acknowledged
            with contextlib.suppress(ValueError, TypeError):
                receipts.append(Receipt(**json.loads(line)))
        paths.append(path)
    return receipts, paths


def delete(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
