"""Issue 15, case 3: one settings schema, checked once when params.yaml is read.

Every typo that used to become a default (``reports.metrics: [ndgc@10]``, ``evaluation.seed``,
``reports.metrcs``, ``evalution:``/``tunning:``, ``cutoffs: []``, ``metrics: []``, an unknown
split or model in a suite, ``"no"`` for a boolean) is refused by ``load_params`` with one line
naming the file, the key path and the fix, before any command does any work.
"""
from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from common.errors import RecAuditError, run_cli
from protocols.metrics import ALL_METRICS
from protocols.paper_suites import enable_suite, paper_suites
from protocols.params import load_params
from protocols.settings import Settings, check_settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def repository_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="module")
def base() -> dict:
    return repository_params()


def refusal(tmp_path: Path, params: dict) -> str:
    """The one-line error ``load_params`` gives for ``params`` written to a file."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(RecAuditError) as caught:
        load_params(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message


def edited(base: dict, edit) -> dict:
    params = copy.deepcopy(base)
    edit(params)
    return params


# ----- the repository's own file ------------------------------------------------------------------
def test_the_repository_params_yaml_validates():
    loaded = load_params(ROOT / "params.yaml")
    assert loaded["suite"]["splits"] and loaded["evaluation"]["cutoffs"]
    typed = load_settings(ROOT / "params.yaml")
    assert isinstance(typed, Settings) and typed.suite.splits == tuple(loaded["suite"]["splits"])
    assert typed.evaluation.cutoffs == tuple(sorted(loaded["evaluation"]["cutoffs"]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.seed = 1  # type: ignore[misc]


def test_every_suite_of_the_repository_validates_when_selected(base):
    for name, suite in base["suites"].items():
        typed = check_settings({**base, "suite": suite}, "params.yaml")
        assert typed.suite.models == tuple(suite["models"]), name
        if suite.get("reports"):
            assert typed.reports.metrics == tuple(m.lower() for m in suite["reports"]["metrics"])


@pytest.mark.parametrize("name", sorted(paper_suites(repository_params())))
def test_an_enabled_paper_suite_gives_a_valid_file(tmp_path, name):
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    enable_suite(path, name)
    typed = load_settings(path)
    expected = repository_params()["paper_suites"][name]["suite"]
    assert typed.suite.splits == tuple(expected["splits"])
    assert typed.tuning.metric == expected["tuning"]["metric"]


# ----- each typo of the issue ---------------------------------------------------------------------
def test_a_misspelled_report_metric_is_refused_with_the_valid_names(tmp_path, base):
    message = refusal(tmp_path, edited(base, lambda p: p["reports"].update(metrics=["ndgc@10", "recall@20"])))
    assert "reports.metrics[0] 'ndgc@10': unknown metric 'ndgc'; known metrics: " in message
    assert ", ".join(sorted(ALL_METRICS)) in message and "did you mean 'ndcg'?" in message


def test_evaluation_seed_instead_of_seeds_is_refused(tmp_path, base):
    message = refusal(tmp_path, edited(base, lambda p: p["evaluation"].update(seed=3)))
    assert "evaluation.seed: unknown evaluation key 'seed'" in message
    assert "batch_size, cutoffs, metrics, seeds" in message and "did you mean 'seeds'?" in message


def test_reports_metrcs_is_refused(tmp_path, base):
    message = refusal(tmp_path, edited(base, lambda p: p["reports"].update(metrcs=["ndcg@10"])))
    assert "reports.metrcs: unknown reports key 'metrcs'" in message and "did you mean 'metrics'?" in message


@pytest.mark.parametrize("section, typo", [("evaluation", "evalution"), ("tuning", "tunning")])
def test_a_misspelled_section_is_refused(tmp_path, base, section, typo):
    message = refusal(tmp_path, edited(base, lambda p: p.__setitem__(typo, p.pop(section))))
    assert f"{typo}: unknown section {typo!r}; known sections: " in message
    assert f"did you mean {section!r}?" in message


def test_empty_cutoffs_are_refused_not_replaced_by_defaults(tmp_path, base):
    message = refusal(tmp_path, edited(base, lambda p: p["evaluation"].update(cutoffs=[])))
    assert "evaluation.cutoffs is an empty list" in message and "[10, 20]" in message


@pytest.mark.parametrize("section", ["evaluation", "reports"])
def test_empty_metrics_are_refused(tmp_path, base, section):
    message = refusal(tmp_path, edited(base, lambda p: p[section].update(metrics=[])))
    assert f"{section}.metrics is an empty list" in message


def test_an_unknown_model_in_the_suite_is_refused_up_front(tmp_path, base):
    def edit(params):
        params["suite"] = dict(params["suite"], models=["pop", "itemknn-cosinus"])

    message = refusal(tmp_path, edited(base, edit))
    assert "suite.models[1]: unknown model 'itemknn-cosinus'; known models: " in message
    assert "ials-tois" in message and "did you mean 'itemknn-cosine'?" in message  # labels and registered names


def test_an_unknown_split_in_a_suite_is_refused_up_front(tmp_path, base):
    message = refusal(tmp_path, edited(base, lambda p: p["suites"]["full"]["splits"].append("movielens-100k/holdot")))
    index = len(base["suites"]["full"]["splits"])
    assert f"suites.full.splits[{index}]: unknown split 'movielens-100k/holdot'; known splits: " in message
    assert "movielens-100k/temporal" in message and "define it under splits" in message


def test_a_boolean_written_as_a_string_is_refused(tmp_path, base):
    message = refusal(tmp_path, edited(base, lambda p: p["datasets"].update({"movielens-100k": {"deduplicate": "no"}})))
    assert "datasets.movielens-100k.deduplicate must be true or false, got 'no' (a string)" in message


def test_unknown_metrics_are_refused_in_every_section(tmp_path, base):
    message = refusal(tmp_path, edited(base, lambda p: p["tuning"].update(metric="ndgc@10")))
    assert "tuning.metric 'ndgc@10': unknown validation metric 'ndgc'" in message
    message = refusal(tmp_path, edited(base, lambda p: p["evaluation"]["metrics"].append("recal")))
    assert f"evaluation.metrics[{len(base['evaluation']['metrics'])}] 'recal': unknown metric 'recal'" in message
    message = refusal(tmp_path, edited(base, lambda p: p["evaluation"].update(metrics=["ndcg@10"])))
    assert "evaluation.metrics[0] 'ndcg@10' is a label, not a metric name; write 'ndcg'" in message
    message = refusal(tmp_path, edited(base, lambda p: p["suites"]["visual"]["reports"].update(metrics=["auc@10"])))
    assert ("suites.visual.reports.metrics[0] 'auc@10' is not a metric label (auc takes no cutoff); "
            "write 'auc'") in message


def test_a_report_column_the_evaluation_never_computes_is_refused(tmp_path, base):
    message = refusal(tmp_path, edited(base, lambda p: p["reports"].update(metrics=["ndcg@15"])))
    assert ("reports.metrics[0] 'ndcg@15' is a column the evaluation never computes: "
            "evaluation.cutoffs has no 15") in message
    message = refusal(tmp_path, edited(base, lambda p: p["suites"]["visual"]["reports"].update(metrics=["map@10"])))
    assert "suites.visual.evaluation.metrics has no 'map'" in message


def test_suite_overrides_are_checked_together(tmp_path, base):
    message = refusal(tmp_path, edited(base, lambda p: p["suites"]["citeulike"]["tuning"].update(trials=10)))
    assert "tuning.budget and suites.citeulike.tuning.trials are both set" in message
    message = refusal(tmp_path, edited(base, lambda p: p["suites"]["citeulike"]["tuning"].update(budget="huge")))
    assert ("suites.citeulike.tuning.budget: unknown tuning budget 'huge'; "
            "known tuning budgets: default, paper") in message


def test_models_entries_name_registered_models_and_keep_their_keywords(tmp_path, base):
    message = refusal(tmp_path, edited(base, lambda p: p["models"].update(mine={"model": "itemknnn", "topk": 5})))
    assert "models.mine.model: unknown model 'itemknnn'" in message
    message = refusal(tmp_path, edited(base, lambda p: p["models"].update(knn={"topk": 5})))
    assert "models.knn: unknown model 'knn'" in message and "add `model: NAME`" in message
    # Constructor keywords are the model's own business (checked when it is built).
    check_settings(edited(base, lambda p: p["models"].update(mine={"model": "itemknn", "anything": "goes"})))


def test_split_entries_name_a_protocol_and_leave_its_parameters_to_it(tmp_path, base):
    message = refusal(tmp_path, edited(base, lambda p: p["splits"]["movielens-100k/holdout"].update(protocol="holdot")))
    assert "splits.movielens-100k/holdout.protocol: unknown protocol 'holdot'" in message
    check_settings(edited(base, lambda p: p["splits"]["movielens-100k/holdout"].update(test_share=0.2)))


def test_paper_suites_are_checked_too(tmp_path, base):
    message = refusal(tmp_path, edited(base, lambda p: p["paper_suites"]["vbpr-paper"]["suite"]["models"]
                                       .append("vbpr2")))
    index = len(base["paper_suites"]["vbpr-paper"]["suite"]["models"])
    assert f"paper_suites.vbpr-paper.suite.models[{index}]: unknown model 'vbpr2'" in message
    message = refusal(tmp_path, edited(base, lambda p: p["paper_suites"]["vbpr-paper"].update(dataset={})))
    assert "paper_suites.vbpr-paper.dataset: unknown paper suite key 'dataset'" in message


@pytest.mark.parametrize("command", ["evaluate", "tune"])
def test_a_command_refuses_before_any_work(tmp_path, base, capsys, command):
    from protocols.__main__ import main

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(edited(base, lambda p: p.__setitem__("evalution", p.pop("evaluation")))))
    out = tmp_path / "out"
    argv = [command, "--split", "movielens-100k/holdout", "--model", "pop", "--params-yaml", str(params),
            "--splits-root", str(tmp_path / "no-splits")]
    argv += ["--results-root", str(out)] if command == "evaluate" else ["--out", str(out / "pop.yaml")]
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, argv)
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and error.count("\n") == 1
    assert error.startswith(f"error: {params}: evalution: unknown section 'evalution'")
    assert not out.exists()  # refused before the split was looked for


# ----- wrong types --------------------------------------------------------------------------------
WRONG_TYPES = [
    (("seed",), "42", "seed must be an integer >= 0, got '42' (a string)"),
    (("seed",), True, "seed must be an integer >= 0, got True (a boolean)"),
    (("seed",), 1.5, "seed must be an integer >= 0"),
    (("evaluation", "seeds"), "3", "evaluation.seeds must be a positive integer, got '3' (a string)"),
    (("evaluation", "seeds"), 3.0, "evaluation.seeds must be a positive integer, got 3.0 (a number)"),
    (("evaluation", "cutoffs"), 10, "evaluation.cutoffs must be a non-empty list of positive integers"),
    (("evaluation", "cutoffs"), [10, "20"], "evaluation.cutoffs[1] must be a positive integer, got '20'"),
    (("evaluation", "cutoffs"), [True], "evaluation.cutoffs[0] must be a positive integer, got True (a boolean)"),
    (("evaluation", "metrics"), "ndcg", "evaluation.metrics must be a non-empty list of metric names"),
    (("evaluation", "batch_size"), "big", "evaluation.batch_size must be a positive integer or null"),
    (("evaluation", "batch_size"), 256.0, "evaluation.batch_size must be a positive integer or null"),
    (("reports", "metrics"), "ndcg@10", "reports.metrics must be a list of labels such as ndcg@10"),
    (("reports", "alpha"), "0.05", "reports.alpha must lie strictly between 0 and 1, got '0.05' (a string)"),
    (("reports", "alpha"), True, "reports.alpha must lie strictly between 0 and 1, got True (a boolean)"),
    (("reports", "n_resamples"), 1000.0, "reports.n_resamples must be a positive integer, got 1000.0"),
    (("audit", "tolerance"), "5%", "audit.tolerance must be a number in [0, 1)"),
    (("audit", "tolerance"), False, "audit.tolerance must be a number in [0, 1), got False (a boolean)"),
    (("tuning", "metric"), 10, "tuning.metric must be a validation metric label"),
    (("tuning", "budget"), ["default"], "tuning.budget must be the name of one of tuning.budgets"),
    (("tuning", "budgets", "default", "trials"), "5", "tuning.budgets.default.trials must be a positive integer"),
    (("tuning", "budgets", "default"), 5, "tuning.budgets.default must be a mapping with 'trials'"),
    (("tuning",), [1], "tuning must be a mapping"),
    (("datasets", "movielens-100k", "min_user_interactions"), 5.0, "must be an integer >= 0, got 5.0"),
    (("datasets", "movielens-100k", "rating_threshold"), "4", "rating_threshold must be a number or null"),
    (("splits", "movielens-100k/holdout", "seed"), "7", "splits.movielens-100k/holdout.seed must be an integer >= 0"),
    (("splits", "movielens-100k/holdout"), [1], "splits.movielens-100k/holdout must be a mapping"),
    (("models", "pop"), [1], "models.pop must be a mapping of constructor keywords"),
    (("models", "ials-tois", "model"), 3, "models.ials-tois.model must be the name of a registered model"),
    (("features", "movielens-100k/efficientnet-lite0", "extractor"), 1, "extractor must be an extractor name"),
    (("suites", "default", "models"), "pop", "suites.default.models must be a non-empty list of model labels"),
    (("suites", "default", "splits"), [], "suites.default.splits is an empty list"),
    (("suites", "default", "tuning"), [], "suites.default.tuning must be a mapping"),
]


@pytest.mark.parametrize("keys, value, fragment", WRONG_TYPES, ids=[".".join(k) + f"={v!r}" for k, v, _ in WRONG_TYPES])
def test_a_value_of_the_wrong_type_is_refused(tmp_path, base, keys, value, fragment):
    def edit(params):
        node = params
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    assert fragment in refusal(tmp_path, edited(base, edit))


SMALL = {"seed": 1, "evaluation": {"seeds": 1, "cutoffs": [10], "metrics": ["ndcg"]},
         "reports": {"metrics": ["ndcg@10"]}}
ANY_VALUE = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False)
                         | st.text(max_size=5),
                         lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=3), inner, max_size=2),
                         max_leaves=4)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(["seed", "seeds", "batch_size", "n_resamples", "alpha", "cutoffs"]), value=ANY_VALUE)
def test_only_values_of_the_declared_kind_pass(key, value):
    """Whatever YAML can hold: integers are not booleans or floats, numbers not strings."""
    params = copy.deepcopy(SMALL)
    if key == "seed":
        params["seed"] = value
        valid = type(value) is int and value >= 0
    elif key in ("seeds", "batch_size"):
        params["evaluation"][key] = value
        valid = (type(value) is int and value >= 1) or (key == "batch_size" and value is None)
    elif key == "cutoffs":
        params["evaluation"]["cutoffs"] = [10, value]
        valid = type(value) is int and value >= 1
    elif key == "n_resamples":
        params["reports"]["n_resamples"] = value
        valid = type(value) is int and value >= 1
    else:
        params["reports"]["alpha"] = value
        valid = type(value) in (int, float) and 0 < value < 1
    if valid:
        check_settings(params)
    else:
        with pytest.raises(RecAuditError) as caught:
            check_settings(params, "p.yaml")
        assert str(caught.value).startswith("p.yaml: ") and "\n" not in str(caught.value)
