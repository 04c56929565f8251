"""The pipeline's data flow, resolved by DVC itself (foreach and matrix expanded over params.yaml):
test files are read by evaluate stages only, and tune stages read the validation parts only.

DVC reads copies of dvc.yaml and params.yaml in a scratch repository, so the working tree's
lock file and git state play no part.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
import yaml

from protocols.split_data import PART_FILES, TEST_PARTS, TUNING_PARTS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:dvc")

ROOT = Path(__file__).resolve().parents[1]
TEST_FILES = frozenset(PART_FILES[part] for part in TEST_PARTS)  # test, test_input, negatives




@dataclass(frozen=True)
class ResolvedStage:
    name: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]

    @property
    def kind(self) -> str:
        return self.name.split("@")[0]


def resolve(dvc_yaml: dict, tmp_path: Path) -> list[ResolvedStage]:
    """Every stage of ``dvc_yaml`` as DVC expands it against the repository's params.yaml."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    scratch = tmp_path / "pipeline"
    scratch.mkdir()
    shutil.copy(ROOT / "params.yaml", scratch / "params.yaml")
    (scratch / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    Repo.init(str(scratch), no_scm=True).close()
    with Repo(str(scratch)) as repo:
        repo.index.graph  # builds the DAG: overlapping outputs or cycles raise here
        return [ResolvedStage(stage.name, str(stage.cmd),
                              tuple(str(d.def_path) for d in stage.deps if not isinstance(d, ParamsDependency)),
                              tuple(str(o.def_path) for o in stage.outs))
                for stage in repo.index.stages]


def split_folders(stages: list[ResolvedStage]) -> list[PurePosixPath]:
    return [PurePosixPath(out) for stage in stages if stage.kind == "split" for out in stage.outs]


def reads_test_data(stage: ResolvedStage, folders: list[PurePosixPath]) -> list[str]:
    """The deps of ``stage`` that are, or contain, a test file of some split."""
    test_paths = [folder / name for folder in folders for name in TEST_FILES]
    return [dep for dep in stage.deps
            if PurePosixPath(dep).name in TEST_FILES
            or any(path == PurePosixPath(dep) or path.is_relative_to(PurePosixPath(dep)) for path in test_paths)]


def real_dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def suite() -> tuple[list[str], list[str]]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    return list(params["suite"]["splits"]), list(params["suite"]["models"])


def all_splits() -> list[str]:
    return list(yaml.safe_load((ROOT / "params.yaml").read_text())["splits"])


# Stages that may read test files: the final evaluation, and the report figure that draws each
# split's item popularity in train against test (it fits nothing and feeds no model selection).
TEST_READERS = {"evaluate", "plots"}


def test_only_evaluate_stages_read_test_files(tmp_path):
    stages = resolve(real_dvc_yaml(), tmp_path)
    folders = split_folders(stages)
    assert len(folders) == len(all_splits())
    readers = {stage.name for stage in stages if reads_test_data(stage, folders)}
    assert any(name.startswith("evaluate@") for name in readers)  # the detector sees evaluate
    assert {name.split("@")[0] for name in readers} <= TEST_READERS, sorted(readers)
    declared = [name for name in real_dvc_yaml()["stages"] if name.startswith("tune")]
    tune_stages = [stage for stage in stages if stage.kind.startswith("tune")]
    if declared:  # a declared tune stage must expand to stages, and those read validation parts only
        assert tune_stages, f"dvc.yaml declares {declared} but they expand to no stage"
    for stage in tune_stages:
        assert "protocols tune" in stage.cmd and not reads_test_data(stage, folders), stage.name


def test_the_tune_stages_read_only_the_tuning_parts(tmp_path):
    stages = resolve(real_dvc_yaml(), tmp_path)
    folders = split_folders(stages)
    tune_stages = [stage for stage in stages if stage.kind == "tune"]
    splits, models = suite()
    assert len(tune_stages) == len(splits) * len(models)
    for stage in tune_stages:
        assert not reads_test_data(stage, folders), stage.name
        split_deps = {PurePosixPath(dep).name for dep in stage.deps if dep.startswith("data/splits/")}
        assert split_deps == {PART_FILES[part] for part in TUNING_PARTS} | {"card.json"}
    first = next(stage for stage in tune_stages if stage.name == f"tune@{splits[0]}-{models[0]}")
    assert first.cmd == (f"python -m protocols tune --split {splits[0]} --model {models[0]} "
                         f"--out tuned/{splits[0]}/{models[0]}.yaml")
    assert set(first.outs) == {f"tuned/{splits[0]}/{models[0]}{suffix}" for suffix in (".yaml", ".trials.csv", ".db")}
    evaluate = next(stage for stage in stages if stage.name == f"evaluate@{splits[0]}-{models[0]}")
    assert f"tuned/{splits[0]}/{models[0]}.yaml" in evaluate.deps  # so DVC runs tune before evaluate


@pytest.mark.parametrize("bad_dep", ["data/splits/${item.split}", "data/splits/${item.split}/negatives.parquet",
                                     "data/splits"])
def test_a_tune_stage_reading_test_data_is_caught(tmp_path, bad_dep):
    pipeline = real_dvc_yaml()
    pipeline["stages"]["tune"]["deps"].append(bad_dep)
    stages = resolve(pipeline, tmp_path)
    folders = split_folders(stages)
    tune_stages = [s for s in stages if s.kind == "tune"]
    assert tune_stages and all(reads_test_data(s, folders) for s in tune_stages)


def test_model_stages_depend_on_their_own_model_sources_and_inputs_only(tmp_path):
    stages = resolve(real_dvc_yaml(), tmp_path)
    producer = next(stage for stage in stages if stage.kind == "model-sources")
    assert producer.outs == ("model_sources", "model_inputs") and "protocols model-sources" in producer.cmd
    assert "data/features" in producer.deps  # extracted features are hashed into the input manifests
    model_stages = [stage for stage in stages if stage.kind in ("tune", "evaluate")]
    assert model_stages
    for stage in model_stages:
        model = stage.cmd.split("--model ")[1].split()[0]
        split = stage.cmd.split("--split ")[1].split()[0]
        assert f"model_sources/{model}.txt" in stage.deps, stage.name
        assert f"model_inputs/{split}/{model}.txt" in stage.deps, stage.name
        assert not {"baselines", "neural", "model_sources", "model_inputs", "data/features"} & set(stage.deps), \
            stage.name


def test_every_features_entry_is_an_extraction_stage_over_item_data_only(tmp_path):
    stages = resolve(real_dvc_yaml(), tmp_path)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    extraction = {stage.outs[0]: stage for stage in stages if stage.kind == "features"}
    expected = {f"data/features/{entry['dataset']}/{entry['extractor']}" for entry in params["features"].values()}
    assert set(extraction) == expected and expected
    for out, stage in extraction.items():
        dataset = out.split("/")[2]
        assert f"data/prepared/{dataset}" in stage.deps and f"data/raw/{dataset}" in stage.deps
        assert {"datasets/extractors.py", "datasets/images.py"} <= set(stage.deps)
        assert not any(dep.startswith("data/splits") for dep in stage.deps), stage.name
