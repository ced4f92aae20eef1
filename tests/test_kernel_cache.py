"""The compiled kernels' disk cache is cleared when any kernel module's source changes
(Numba checks only each function's own file: a caller in another module would keep the
old callee), wherever Numba keeps it."""

import os
import subprocess
import sys
from pathlib import Path

from policylab.engine import kernel_cache
from policylab.engine.kernel_cache import STAMP, clear_stale_kernel_cache


def test_cache_cleared_when_any_kernel_source_changes(tmp_path):
    sources, cache = tmp_path / "engine", tmp_path / "cache"
    sources.mkdir()
    (sources / "kernels.py").write_text("def trade(): pass\n")
    (sources / "kernels_passes.py").write_text("def lay_off(): trade()\n")
    cache.mkdir()
    cached = [cache / "kernels_passes.lay_off-3.py312.nbi", cache / "kernels_passes.lay_off-3.py312.1.nbc"]
    other = cache / "model.cpython-312.pyc"
    for f in [*cached, other]:
        f.write_bytes(b"x")
    clear_stale_kernel_cache(sources, cache)  # no stamp yet: cleared
    assert not any(f.exists() for f in cached) and other.exists()
    for f in cached:
        f.write_bytes(b"x")
    clear_stale_kernel_cache(sources, cache)  # sources unchanged: kept
    assert all(f.exists() for f in cached)
    (sources / "kernels.py").write_text("def trade(): return 1\n")  # the callee's module changes
    clear_stale_kernel_cache(sources, cache)
    assert not any(f.exists() for f in cached) and other.exists()


def test_unwritable_cache_folder_is_left_alone(tmp_path):
    (tmp_path / "kernels.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").write_text("a file where the folder would be")
    clear_stale_kernel_cache(tmp_path, tmp_path / "__pycache__")  # no error: Numba compiles without caching
    assert (tmp_path / "__pycache__").read_text() == "a file where the folder would be"


def test_default_folder_is_where_numba_caches_the_kernels():
    """Beside the sources in a writable tree (a clone, as the tests run), where the
    kernels' own cache files are."""
    from policylab.engine import kernels

    folder = kernel_cache.numba_cache_folder()
    assert folder == Path(kernels.trade.stats.cache_path)
    assert (folder / STAMP).exists()  # importing the kernels checked it


def test_numba_cache_dir_is_cleared_too(tmp_path):
    """With NUMBA_CACHE_DIR (or Numba's user-wide folder, for an installed copy) the
    kernels' code is cached outside the tree; a stale stamp there clears it, on import of
    the kernels, before any kernel is loaded."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    where = ("from policylab.engine import kernel_cache, kernels; "
             "print(kernel_cache.numba_cache_folder()); print(kernels.trade.stats.cache_path)")
    out = subprocess.run([sys.executable, "-c", where], env=env, capture_output=True, text=True, check=True)
    folder, numba_folder = out.stdout.split()
    folder = Path(folder)
    assert folder == Path(numba_folder) and tmp_path in folder.parents
    stamp = (folder / STAMP).read_text()
    cached = folder / "kernels_cascade.run_round-617.py312.1.nbc"
    cached.write_bytes(b"x")
    subprocess.run([sys.executable, "-c", "import policylab.engine.kernels_cascade"], env=env, check=True)
    assert cached.exists()  # same sources: kept
    (folder / STAMP).write_text("the digest of older sources")
    subprocess.run([sys.executable, "-c", "import policylab.engine.kernels_cascade"], env=env, check=True)
    assert not cached.exists() and (folder / STAMP).read_text() == stamp
