"""The command-wide thread policy: RECAUDIT_THREADS (1 when unset) reaches every BLAS library,
bad values are one-line errors, and a result records the count it ran with."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import RecAuditError
from common.threads import THREADS_VARIABLE, command_threads

ROOT = Path(__file__).resolve().parent.parent
PROBE = ("from common.threads import apply_thread_policy; apply_thread_policy(); "
         "import numpy, scipy.linalg, torch; from threadpoolctl import threadpool_info; "
         "print(json.dumps([sorted({i['num_threads'] for i in threadpool_info()}), torch.get_num_threads()]))")


def run_python(code: str, threads: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (THREADS_VARIABLE, "OMP_NUM_THREADS",
                                                             "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env[THREADS_VARIABLE] = threads
    return subprocess.run([sys.executable, "-c", "import json; " + code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("threads, expected", [(None, 1), ("1", 1), ("2", 2)])
def test_every_library_gets_the_configured_count(threads, expected):
    result = run_python(PROBE, threads)
    assert result.returncode == 0, result.stderr
    blas_counts, torch_threads = json.loads(result.stdout)
    assert blas_counts == [expected] and torch_threads == expected


def test_libraries_loaded_before_the_policy_are_limited_too():
    code = ("import numpy, scipy.linalg; from common.threads import apply_thread_policy; apply_thread_policy(); "
            "from threadpoolctl import threadpool_info; print(json.dumps(sorted({i['num_threads'] "
            "for i in threadpool_info()})))")
    result = run_python(code, "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [1]


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_value_is_a_one_line_error(value, monkeypatch):
    monkeypatch.setenv(THREADS_VARIABLE, value)
    with pytest.raises(RecAuditError, match=f"RECAUDIT_THREADS='{value}' is not a positive integer"):
        command_threads()
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-m", "protocols", "models"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "RECAUDIT_THREADS" in result.stderr
