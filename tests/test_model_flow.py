"""A model added with one new file and one params entry reaches the leaderboard, with no other
change: ``new-model`` writes the file into a copy of the model packages, and the unchanged
``tune``, ``evaluate`` and ``reports build`` commands run on a small synthetic split.
"""
from __future__ import annotations

import json
import textwrap

import yaml

from datasets.synthetic import make_synthetic
from new_model_layout import copy_layout, new_model, run_in_layout
from protocols.registry import registered_models
from protocols.split_data import write_split
from protocols.splits import make_split
from reports.tables import REFERENCE

NAME = "zz-flow-cooc"
SPLIT = "synth/holdout"
TRIALS = 3

PARAMS_YAML = f"""\
seed: 42
splits:
  {SPLIT}: {{dataset: synth, protocol: holdout, test_fraction: 0.2, validation_fraction: 0.1}}
models:
  pop: {{}}
  {NAME}: {{}}
suites:
  default: {{splits: [{SPLIT}], models: [pop, {NAME}]}}
tuning:
  metric: ndcg@10
  budget: quick
  budgets:
    quick: {{trials: {TRIALS}, startup_trials: 2}}
evaluation:
  seeds: 1
  cutoffs: [10, 20]
  metrics: [ndcg, recall, hr]
  batch_size: null
reports:
  metrics: [ndcg@10, recall@20, hr@10]
  alpha: 0.05
  n_resamples: 200
"""

# What `dvc repro` runs for the suite above (dvc.yaml's tune, evaluate, statistics and report stages).
PIPELINE = textwrap.dedent(f"""\
    from protocols.__main__ import main as protocols
    from reports.__main__ import main as reports
    for model in ("pop", "{NAME}"):
        assert protocols(["tune", "--split", "{SPLIT}", "--model", model,
                          "--out", f"tuned/{SPLIT}/{{model}}.yaml"]) == 0
        assert protocols(["evaluate", "--split", "{SPLIT}", "--model", model,
                          "--params", f"tuned/{SPLIT}/{{model}}.yaml"]) == 0
    assert reports(["statistics", "--results-root", "results", "--out", "reports/statistics.json"]) == 0
    assert reports(["build", "--results-root", "results", "--out", "reports/leaderboard.md"]) == 0
    """)


def test_a_new_model_file_and_params_entry_reach_the_leaderboard(tmp_path, capsys):
    root = copy_layout(tmp_path / "checkout")
    assert new_model(NAME, "--kind", "baseline", "--root", str(root)) == 0
    capsys.readouterr()
    assert NAME not in registered_models()  # the repository itself knows nothing of it
    data = make_synthetic(n_users=150, n_items=80, density=0.08, seed=3)
    split = make_split(data, "holdout", seed=42, params={"test_fraction": 0.2, "validation_fraction": 0.1})
    write_split(split, root / "data" / "splits" / SPLIT)
    (root / "params.yaml").write_text(PARAMS_YAML)

    result = run_in_layout(root, ["-c", PIPELINE])
    assert result.returncode == 0, result.stdout + result.stderr

    tuned = yaml.safe_load((root / "tuned" / SPLIT / f"{NAME}.yaml").read_text())
    assert (tuned["status"], tuned["trials_run"], tuned["searched"]) == ("ok", TRIALS, ["weight"])
    assert 0.0 <= tuned["params"]["weight"] <= 1.0
    record = json.loads((root / "results" / SPLIT / NAME / "metrics.json").read_text())
    assert (record["status"], record["family"], record["params"]) == ("ok", "baseline", tuned["params"])
    assert record["tuning"]["trials_run"] == TRIALS

    leaderboard = (root / "reports" / "leaderboard.md").read_text()
    rows = [line for line in leaderboard.splitlines() if line.startswith("| baseline ")]
    ours = [row for row in rows if f"| {NAME} " in row]
    assert len(rows) == 2 and len(ours) == 1, leaderboard
    assert f" {record['metrics']['ndcg@10']:.4f} [" in ours[0]
    # Planted factors: co-occurrence beats popularity on this data, so the new model leads its
    # table and is the reference the other models are tested against.
    pop = json.loads((root / "results" / SPLIT / "pop" / "metrics.json").read_text())
    assert record["metrics"]["ndcg@10"] > pop["metrics"]["ndcg@10"]
    assert rows[0] == ours[0] and f"| {NAME} {REFERENCE} |" in ours[0]
