"""The engine: per-account state in NumPy arrays and the mechanics that move it (books,
execution and impact, margin, liquidation and ADL, the compiled kernels, the exogenous
path, the venues' own agents, how rules are applied to venues and accounts, the traders'
venue choice, the per-run effects ledger, the money audit), plus the replay and
per-trader reference models that test it.

The engine imports nothing from metrics, experiments, the brief or the CLI.
"""

import hashlib
import os
from pathlib import Path


def clear_stale_kernel_cache(folder: Path = Path(__file__).parent) -> None:
    """Numba's disk cache (``cache=True``) checks only the source file of each cached
    function, so a kernel that calls a kernel of another module would keep the old callee's
    machine code after that module changed. So the cache of every kernel module
    (``kernels*.py``) is cleared whenever any of their sources changes: a stamp of the
    sources is kept beside the cache. Not writable (an installed copy): Numba caches in its
    user-wide folder, which a reinstall renews, since every file's timestamp changes.
    Runs when the engine is imported, before any kernel module."""
    stamp = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.glob("kernels*.py")))).hexdigest()
    cache = folder / "__pycache__"
    mark = cache / "kernels.sources"
    try:
        if mark.read_text() == stamp:
            return
    except OSError:
        pass
    try:
        for f in cache.glob("kernels*.nb[ic]"):
            f.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        tmp = cache / f"kernels.sources.{os.getpid()}"
        tmp.write_text(stamp)
        os.replace(tmp, mark)
    except OSError:
        pass


clear_stale_kernel_cache()
