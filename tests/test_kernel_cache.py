"""The compiled kernels' disk cache is cleared when any kernel module's source changes
(Numba checks only each function's own file: a caller in another module would keep the
old callee)."""

from policylab.engine import clear_stale_kernel_cache


def test_cache_cleared_when_any_kernel_source_changes(tmp_path):
    (tmp_path / "kernels.py").write_text("def trade(): pass\n")
    (tmp_path / "kernels_passes.py").write_text("def lay_off(): trade()\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    cached = [cache / "kernels_passes.lay_off-3.py312.nbi", cache / "kernels_passes.lay_off-3.py312.1.nbc"]
    other = cache / "model.cpython-312.pyc"
    for f in [*cached, other]:
        f.write_bytes(b"x")
    clear_stale_kernel_cache(tmp_path)  # no stamp yet: cleared
    assert not any(f.exists() for f in cached) and other.exists()
    for f in cached:
        f.write_bytes(b"x")
    clear_stale_kernel_cache(tmp_path)  # sources unchanged: kept
    assert all(f.exists() for f in cached)
    (tmp_path / "kernels.py").write_text("def trade(): return 1\n")  # the callee's module changes
    clear_stale_kernel_cache(tmp_path)
    assert not any(f.exists() for f in cached) and other.exists()


def test_unwritable_cache_folder_is_left_alone(tmp_path):
    (tmp_path / "kernels.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").write_text("a file where the folder would be")
    clear_stale_kernel_cache(tmp_path)  # no error: Numba falls back to its user-wide cache
    assert (tmp_path / "__pycache__").read_text() == "a file where the folder would be"
