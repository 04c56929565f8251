"""Fits that would exhaust memory are refused before the work, in one line."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from baselines.ease import EASE
from baselines.slim import SLIM
from common.errors import RecAuditError
from common.memory import LIMIT_VARIABLE, _cgroup_available, _meminfo_available, available_bytes, human_bytes


@pytest.fixture
def wide():
    rng = np.random.default_rng(0)
    return sp.csr_matrix((rng.random((300, 1500)) < 0.01).astype(np.float32))


def test_ease_refuses_a_gram_matrix_larger_than_the_memory(wide, monkeypatch):
    monkeypatch.setenv(LIMIT_VARIABLE, "1e6")  # 1 MB; float32 1,500 x 1,500 needs 9 MB
    with pytest.raises(RecAuditError) as caught:
        EASE(l2=10.0).fit(wide)
    message = str(caught.value)
    assert "\n" not in message
    assert "ease on 300 users x 1,500 items needs about" in message and "1.0 MB is available" in message
    assert "sansa" in message and not hasattr(EASE(), "item_weights_")


def test_the_estimate_follows_dtype_and_the_constraint(monkeypatch):
    tall, wide = sp.csr_matrix((5000, 1000)), sp.csr_matrix((100, 20_000))
    assert EASE(dtype="float64").fit_memory_bytes(tall) == 2 * EASE().fit_memory_bytes(tall)
    assert EASE(non_negative=True).fit_memory_bytes(tall) == 6 * 8 * 1000**2
    assert SLIM().fit_memory_bytes(wide) >= 20_000**2 * 4


def test_fits_when_the_memory_suffices(wide, monkeypatch):
    monkeypatch.setenv(LIMIT_VARIABLE, "1e9")
    assert EASE(l2=10.0).fit(wide).item_weights_.shape == (1500, 1500)


def test_bad_override_is_one_line(monkeypatch):
    monkeypatch.setenv(LIMIT_VARIABLE, "lots")
    with pytest.raises(RecAuditError, match="RECAUDIT_MEMORY_LIMIT='lots' is not a number of bytes"):
        available_bytes()


def test_machine_readings(tmp_path, monkeypatch):
    monkeypatch.delenv(LIMIT_VARIABLE, raising=False)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   2000 kB\n")
    assert _meminfo_available(meminfo) == 2000 * 1024
    (tmp_path / "memory.max").write_text("max\n")
    assert _cgroup_available(tmp_path) is None
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("400000\n")
    assert _cgroup_available(tmp_path) == 600_000
    assert available_bytes() is None or available_bytes() > 0
    assert human_bytes(1_500_000) == "1.5 MB"


def test_sansa_estimates_its_gram_from_the_users_counts():
    from baselines.sansa import SANSA

    # Two users with 3 and 2 items: at most 9 + 4 Gram entries (+ the diagonal), 36 bytes each.
    train = sp.csr_matrix(np.array([[1, 1, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=np.float32))
    assert SANSA().fit_memory_bytes(train) == 36 * (13 + 5)
    assert SANSA().fit_memory_bytes(sp.csr_matrix(np.ones((50, 4), np.float32))) == 36 * 16  # items^2 bound


def test_an_unpredicted_memory_error_is_one_line():
    from common.errors import environment_error

    message = environment_error(MemoryError())
    assert "ran out of memory" in message and "\n" not in message


def test_ease_beyond_scipys_lapack_order_takes_the_tiled_inverse(monkeypatch):
    """scipy's 32-bit-index LAPACK segfaults in potrf at 27,000 items (measured); beyond that
    order EASE inverts by tiles, with the same weights (primal and dual paths)."""
    import baselines.dense_inverse as dense_inverse

    rng = np.random.default_rng(1)
    train = sp.csr_matrix((rng.random((400, 60)) < 0.2).astype(np.float32))
    wide = sp.csr_matrix((rng.random((55, 200)) < 0.2).astype(np.float32))
    expected = [EASE(l2=10.0, dtype="float64").fit(x).item_weights_ for x in (train, wide)]
    # tiles of 16 for every order above 50 (the defaults are bound when the function is defined)
    monkeypatch.setattr(dense_inverse.symmetric_inverse_in_place, "__defaults__", (16, 50))
    for x, weights in zip((train, wide), expected):
        np.testing.assert_allclose(EASE(l2=10.0, dtype="float64").fit(x).item_weights_, weights, atol=1e-10)
