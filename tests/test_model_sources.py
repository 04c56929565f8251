"""Per-model source manifests: the imports they follow, and that editing or adding one model
changes no other model's manifest (which is what keeps DVC from rerunning other models)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from protocols.model_sources import imported_modules, manifest, source_closure
from protocols.registry import get_model_class

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "datasets", "protocols", "baselines", "neural")


def test_imports_are_followed_absolute_relative_and_inside_functions(tmp_path):
    source = tmp_path / "fake.py"
    source.write_text(textwrap.dedent("""\
        import numpy
        from . import knn
        from .similarity import cosine_similarity
        from protocols import space
        from common.errors import RecAuditError

        def later():
            from protocols.metrics import ndcg
            import neural.sampling
        """))
    found = imported_modules("baselines.fake", source)
    assert found == {"baselines", "baselines.knn", "baselines.similarity", "protocols", "protocols.space",
                     "protocols.metrics", "common", "common.errors", "neural", "neural.sampling"}


def test_closure_of_a_model_holds_its_own_imports_and_nothing_else():
    ease = {path.relative_to(ROOT).as_posix() for path in source_closure("baselines.ease").values()}
    assert {"baselines/__init__.py", "baselines/ease.py", "protocols/contract.py"} <= ease
    assert not any(path.startswith("neural/") for path in ease)
    assert "baselines/knn.py" not in ease
    neumf = {path.relative_to(ROOT).as_posix() for path in source_closure("neural.ncf").values()}
    assert {"neural/ncf.py", "neural/training.py", "neural/sampling.py", "protocols/early_stopping.py"} <= neumf


def test_manifest_lines_are_the_sha256_of_each_file():
    text = manifest("ease", get_model_class("ease"))
    lines = text.splitlines()
    assert lines[0].startswith("# sources of model ease (baselines.ease.EASE)")
    for line in lines[1:]:
        digest, path = line.split("  ")
        assert digest == hashlib.sha256((ROOT / path).read_bytes()).hexdigest()
    assert [line.split("  ")[1] for line in lines[1:]] == sorted(line.split("  ")[1] for line in lines[1:])


def _write_manifests(tree: Path, out: str) -> dict[str, str]:
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-m", "protocols", "model-sources", "--out", out], cwd=tree,
                          env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return {path.stem: path.read_text() for path in (tree / out).glob("*.txt")}


def test_editing_or_adding_a_model_changes_only_that_models_manifests(tmp_path):
    tree = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    before = _write_manifests(tree, "first")
    assert {"ease", "itemknn-cosine", "neumf", "multvae"} <= before.keys()

    with (tree / "baselines" / "ease.py").open("a") as handle:
        handle.write("\n# an edit\n")
    (tree / "baselines" / "zz_new.py").write_text(textwrap.dedent("""\
        from baselines.popularity import Popularity
        from protocols.registry import register


        @register("zz-new")
        class ZZNew(Popularity):
            pass
        """))
    after = _write_manifests(tree, "second")

    changed = {name for name in before if before[name] != after[name]}
    assert changed == {name for name in before if "baselines/ease.py" in before[name]}
    assert "ease" in changed and not changed & {"itemknn-cosine", "pop", "neumf"}
    assert after.keys() - before.keys() == {"zz-new"}
    assert "baselines/popularity.py" in after["zz-new"]


def test_editing_shared_training_code_changes_every_neural_manifest_and_no_baseline(tmp_path):
    tree = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    before = _write_manifests(tree, "first")
    with (tree / "neural" / "training.py").open("a") as handle:
        handle.write("\n# an edit\n")
    after = _write_manifests(tree, "second")
    changed = {name for name in before if before[name] != after[name]}
    neural = {name for name in before if "neural/training.py" in before[name]}
    assert changed == neural
    assert {"gmf", "mlp", "neumf", "multvae", "multdae", "cdae", "bprmf"} <= changed
    assert not changed & {"ease", "slim", "itemknn-cosine", "pop"}


def test_no_baseline_imports_neural_code():
    from protocols.registry import registered_models

    for name, cls in registered_models().items():
        if not cls.__module__.startswith("baselines."):
            continue
        files = {path.relative_to(ROOT).as_posix() for path in source_closure(cls.__module__).values()}
        assert not any(path.startswith("neural/") for path in files), (name, sorted(files))
        assert "common/errors.py" in files  # the shared helpers live in common/
