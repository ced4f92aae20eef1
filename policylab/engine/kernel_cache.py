"""The compiled kernels' disk cache: where Numba keeps it, and clearing it when a kernel
module's source changes.

Numba (``cache=True``) checks a cached function against its own source file only (since
Numba 0.68 against a digest of its content). The kernels of one module call kernels of
others and carry the callees' machine code, so after a change to ``kernels.py`` alone the
cached code of ``kernels_cascade.py`` would still run the old callee. So the cache of every
kernel module (``kernels*.py``) is cleared whenever any of their sources changes, wherever
Numba keeps it: beside the sources (a clone, an editable install), in ``NUMBA_CACHE_DIR``,
or in Numba's user-wide folder (an installed copy, whose sources a reinstall renews with
the same content for the unchanged modules). :mod:`policylab.engine.kernels` calls
:func:`clear_stale_kernel_cache` before any kernel module defines a kernel; every other
kernel module imports it first.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

KERNELS = Path(__file__).parent  # the kernel modules' folder
STAMP = "kernels.sources"  # beside the cached code: the digest of the sources it was compiled from


def numba_cache_folder() -> Path | None:
    """The folder Numba caches the kernel modules' compiled code in: Numba's own choice
    for a function of their folder (``NUMBA_CACHE_DIR`` if set, else ``__pycache__``
    beside the sources if writable, else its user-wide folder); None if it cannot cache."""
    from numba.core.caching import FunctionCache

    try:
        return Path(FunctionCache(numba_cache_folder).cache_path)
    except (RuntimeError, OSError):
        return None


def clear_stale_kernel_cache(sources: Path = KERNELS, cache: Path | None = None) -> None:
    """Delete the cached code of every kernel module (``kernels*.nbi``/``.nbc`` in
    ``cache``, by default :func:`numba_cache_folder`) unless the stamp beside it is the
    digest of the current ``kernels*.py`` in ``sources``; then write that stamp (atomically:
    processes starting together at worst both clear). A folder that cannot be read or
    written is left alone: Numba then compiles without caching."""
    stamp = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(sources.glob("kernels*.py")))).hexdigest()
    cache = numba_cache_folder() if cache is None else cache
    if cache is None:
        return
    mark = cache / STAMP
    try:
        if mark.read_text() == stamp:
            return
    except OSError:
        pass
    try:
        for f in cache.glob("kernels*.nb[ic]"):
            f.unlink(missing_ok=True)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f"{STAMP}.{os.getpid()}"
        tmp.write_text(stamp)
        os.replace(tmp, mark)
    except OSError:
        pass
