"""A throw-away copy of the model packages, for tests that generate models (not a test module).

``python -m protocols new-model --root <copy>`` writes there, never into the repository; a
subprocess whose working folder is the copy then imports ``baselines`` and ``neural`` from it
(the working folder comes first on ``sys.path``) and everything else from the repository.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import run_cli
from protocols.__main__ import main
from protocols.cli_new_model import KINDS

ROOT = Path(__file__).resolve().parents[1]


def copy_layout(destination: Path) -> Path:
    """``destination`` with copies of the model packages' sources and an empty ``tests/``."""
    for package in KINDS.values():
        (destination / package).mkdir(parents=True)
        for source in (ROOT / package).glob("*.py"):
            shutil.copy2(source, destination / package / source.name)
    (destination / "tests").mkdir()
    # An ini of its own, so that the repository's pyproject (pythonpath = ".") stays out.
    (destination / "pytest.ini").write_text("[pytest]\naddopts = -q -p no:cacheprovider\n")
    return destination


def run_in_layout(layout: Path, args: list[str], **env: str) -> subprocess.CompletedProcess:
    """``python <args>`` with the copy as working folder, the repository after it on the path."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(layout), str(ROOT)]), **env}
    return subprocess.run([sys.executable, *args], cwd=layout, env=environment, capture_output=True, text=True,
                          timeout=300)


def new_model(*argv: str) -> int:
    """Exit status of ``python -m protocols new-model <argv>``, run in this process."""
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["new-model", *argv])
    return exit_.value.code
