"""PROMETHEUS_MULTIPROC_DIR for ``gate serve --workers N``, prepared in the parent before any worker
starts. Kept apart from gate.metrics: prometheus-client reads the variable when it is first imported,
and the parent must not import it (nor write metric files of its own)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess() -> str:
    """A directory for every worker's metric files, emptied of an earlier run's (a scrape reads every
    file in it). Made in the temp dir, and removed at exit, unless the environment already names one."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        for old in Path(path).glob("*.db"):
            old.unlink(missing_ok=True)
    else:
        path = tempfile.mkdtemp(prefix="gate-metrics-")
        os.environ[MULTIPROC_ENV] = path
        atexit.register(shutil.rmtree, path, True)
    return path
