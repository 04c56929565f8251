"""``python -m protocols new-model``: the generated files work as written, and bad names are
refused with one line and nothing written.

Files are generated into a temporary copy of ``baselines/`` and ``neural/`` (``--root``), never
into the repository; a subprocess whose working folder is that copy imports them from there.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from new_model_layout import ROOT, copy_layout, new_model, run_in_layout
from protocols.__main__ import main
from protocols.cli_new_model import KINDS, class_name, module_name
from protocols.conformance import CHECKS


@pytest.fixture
def layout(tmp_path):
    return copy_layout(tmp_path / "checkout")


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind, name", [
    ("baseline", "zz-cooc-demo"),
    pytest.param("neural", "zz-logmf-demo", marks=pytest.mark.slow),  # torch import and fits: ~6 s
])
def test_generated_model_registers_conforms_and_passes_its_own_test(layout, kind, name, capsys):
    assert new_model(name, "--kind", kind, "--root", str(layout)) == 0
    module = module_name(name)
    package = KINDS[kind]
    model_file = layout / package / f"{module}.py"
    test_file = layout / "tests" / f"test_model_{module}.py"
    out = capsys.readouterr().out
    assert f"wrote {model_file}" in out and f"wrote {test_file}" in out
    assert f"\n       {name}: {{}}\n" in out and "dvc repro" in out and "&all_models" in out
    assert f'@register("{name}")' in model_file.read_text()
    assert f"class {class_name(module)}(" in model_file.read_text()

    # The registry imports every model file for every command: torch must wait for a fit.
    imported = run_in_layout(layout, ["-c", f"import sys, {package}.{module}; print('torch' in sys.modules)"])
    assert imported.stdout.strip() == "False", imported.stderr

    # The repository's conformance test, collected in the copy, picks the new model up.
    result = run_in_layout(layout, [
        "-m", "pytest", "-c", "pytest.ini", "-rA",
        str(test_file), str(ROOT / "tests" / "new_model_checks.py"),
        f"{ROOT / 'tests' / 'test_conformance.py'}::test_model_conforms", "-k", f"{name} or not test_model_conforms",
    ], NEW_MODEL_NAME=name, NEW_MODEL_KIND=kind, NEW_MODEL_MODULE=f"{package}.{module}")
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    passed = re.findall(r"^PASSED (\S+)", report, flags=re.MULTILINE)
    conformance = {found for p in passed for found in re.findall(r"test_model_conforms\[(.+)\]$", p)}
    assert conformance == {f"{name}-{check}" for check in CHECKS}, report
    own = {p.rsplit("::", 1)[-1] for p in passed if "test_model_conforms" not in p}
    assert own == {"test_beats_random_on_planted_data", "test_registered_from_the_new_file",
                   f"test_template_formula_{kind}"}, report

def test_generated_files_are_valid_python_for_every_kind(layout):
    for kind, name in (("baseline", "Cooc-Two"), ("neural", "logmf_two")):
        assert new_model(name, "--kind", kind, "--root", str(layout)) == 0
        module = module_name(name)
        for path in (layout / KINDS[kind] / f"{module}.py", layout / "tests" / f"test_model_{module}.py"):
            compile(path.read_text(), str(path), "exec")
    assert module_name("Cooc-Two") == "cooc_two" and class_name("cooc_two") == "CoocTwo"


@pytest.mark.parametrize("name, fragment", [
    ("3d-model", "is invalid"),
    ("my model", "is invalid"),
    ("double--dash", "is invalid"),
    ("trailing-", "is invalid"),
    ("naïve", "is invalid"),
    ("class", "a Python keyword"),
    ("recommender", "which the template imports"),
    ("ease", "clashes with model 'ease', registered by baselines.ease.EASE"),
    ("EASE", "clashes with model 'ease'"),
    ("itemknn_cosine", "clashes with model 'itemknn-cosine'"),
    ("sampling", "already exists as neural/sampling.py"),
    ("similarity", "baselines/similarity.py exists and was not written by `new-model similarity`"),
])
def test_bad_names_are_one_line_errors_and_write_nothing(layout, capsys, name, fragment):
    before = tree(layout)
    assert new_model(name, "--kind", "baseline", "--root", str(layout), "--force") == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and fragment in error, error
    assert tree(layout) == before


def test_existing_files_need_force_and_force_rewrites_only_them(layout, capsys):
    assert new_model("zz-again", "--kind", "baseline", "--root", str(layout)) == 0
    model_file = layout / "baselines" / "zz_again.py"
    test_file = layout / "tests" / "test_model_zz_again.py"
    generated = model_file.read_text()
    model_file.write_text(generated.replace("weight: float = 0.8", "weight: float = 0.5"))
    edited = tree(layout)
    capsys.readouterr()

    assert new_model("zz-again", "--kind", "baseline", "--root", str(layout)) == 2
    assert "baselines/zz_again.py exists; pass --force" in capsys.readouterr().err
    assert tree(layout) == edited
    test_file.unlink()  # the test alone is missing: still refused without --force
    assert new_model("zz-again", "--kind", "baseline", "--root", str(layout)) == 2
    # Another kind would leave a second module of the same name behind.
    assert new_model("zz-again", "--kind", "neural", "--root", str(layout), "--force") == 2
    assert "already exists as baselines/zz_again.py" in capsys.readouterr().err

    assert new_model("zz-again", "--kind", "baseline", "--root", str(layout), "--force") == 0
    assert model_file.read_text() == generated and test_file.exists()

    # A file the user rewrote without the template's origin line is never overwritten.
    test_file.write_text("def test_mine():\n    assert True\n")
    capsys.readouterr()
    assert new_model("zz-again", "--kind", "baseline", "--root", str(layout), "--force") == 2
    assert "tests/test_model_zz_again.py exists and was not written by" in capsys.readouterr().err
    assert test_file.read_text().startswith("def test_mine")


def test_root_without_model_packages_is_refused(tmp_path, capsys):
    assert new_model("zz-nowhere", "--kind", "baseline", "--root", str(tmp_path)) == 2
    error = capsys.readouterr().err
    assert "has no baselines/ package; run from the repository root or pass --root" in error
    assert not any(tmp_path.iterdir())


def test_unknown_kind_is_refused(layout, capsys):
    with pytest.raises(SystemExit):
        main(["new-model", "zz-kind", "--kind", "deep", "--root", str(layout)])
    assert "invalid choice: 'deep'" in capsys.readouterr().err
