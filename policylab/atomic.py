"""Writing output files atomically: all of them, or none half-written."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def write_all(jobs: Sequence[tuple[Path, Callable[[Path], object]]], threads: int = 1) -> list[Path]:
    """Write each ``(path, write)`` job by calling ``write(tmp)`` on a temporary name in the
    same folder, then rename every file into place once all are written, in job order. On
    failure the temporary files are removed (once every write has returned) and no target
    is touched. ``threads`` > 1: that many writes at once (the Parquet writer releases the
    GIL). Returns the paths written."""
    tag = uuid.uuid4().hex[:8]
    staged = [(path.with_name(f".{path.name}.{tag}.tmp"), path, write) for path, write in jobs]
    try:
        if threads > 1:
            pool = ThreadPoolExecutor(threads)
            try:
                for f in [pool.submit(write, tmp) for tmp, _, write in staged]:
                    f.result()
            finally:  # on failure: drop the writes not started, wait for those running
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            for tmp, _, write in staged:
                write(tmp)
        for tmp, path, _ in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _, _ in staged:
            tmp.unlink(missing_ok=True)
    return [path for _, path, _ in staged]
