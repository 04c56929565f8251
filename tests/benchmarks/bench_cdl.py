"""Seconds per epoch and fit time of CDL and CVAE on CiteULike-t, P = 10 (the CVAE authors' split), CPU.

Not collected by pytest. Prepare the data once, then run from the repository root::

    RECAUDIT_MIRROR=../shared/data python -m datasets fetch citeulike-t
    python -m datasets prepare citeulike-t
    python tests/benchmarks/bench_cdl.py [--models cdl cvae] [--threads 1] [--epochs 2] [--pretrain-epochs 1]
    python tests/benchmarks/bench_cdl.py --full [--models cdl]      # the default schedule, end to end

Fits on ``given/p10/train.parquet`` with the item set ``bow-tfidf`` and each model's default
hyperparameters. Without ``--full`` the schedule is shortened (``--pretrain-epochs`` epochs of
every pre-training stage, ``--epochs`` epochs of training) and each stage is timed on its own,
so the full default fit (CDL: 200 DAE epochs per layer + 200 SDAE epochs, the TOIS re-run;
CVAE: 50 epochs per DAE layer and latent layer + 100 whole-VAE epochs, then 100 epochs) is
projected as ``sum over stages of seconds per epoch x default epochs``. ``--full`` runs the
default schedule and also prints recall@50..300 on ``given/p10/test.parquet`` (training items
excluded, users without test items skipped), next to the TOIS re-run of the authors' code. The
models train on one CPU thread (``training_threads = 1``); ``--threads`` sets torch's threads
for the rest (scoring). ``--checkpoint-dir`` keeps per-epoch checkpoints (one sub-folder per
model), so that an interrupted ``--full`` run resumes after its last finished epoch (the
pre-training is redone). The machine load (``uptime``) is printed with the numbers: timings on
a shared machine vary.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PREPARED = ROOT / "data" / "prepared" / "citeulike-t"
CUTOFFS = [50, 100, 150, 200, 250, 300]
TOIS = {"cdl": ".2231 .3019 .3565 .4031 .4351 .4618", "cvae": ".2387 .3274 .3849 .4263 .4606 .4854"}
# Which timed function a stage is, and the constructor parameter giving its default epochs.
STAGES = {"cdl": {"dae": "pretrain_epochs"},
          "cvae": {"dae": "pretrain_epochs", "latent": "pretrain_epochs", "vae": "pretrain_vae_epochs"}}


def load():
    from datasets.canonical import load_prepared
    from datasets.item_data import TrainingData
    from protocols.evaluation import interaction_matrix

    if not (PREPARED / "meta.json").exists():
        sys.exit("prepare the data first: python -m datasets fetch citeulike-t && python -m datasets prepare "
                 "citeulike-t (with RECAUDIT_MIRROR set)")
    prepared = load_prepared(PREPARED)
    split = prepared.given["p10"]
    train = interaction_matrix([split["train"]], prepared.n_users, prepared.n_items)
    test = interaction_matrix([split["test"]], prepared.n_users, prepared.n_items)
    features = {"bow-tfidf": prepared.item_features["bow-tfidf"]}
    return TrainingData(interactions=train, item_features=features), test


class StageTimer:
    """Wraps the pre-training functions of the network modules and counts their seconds and epochs."""

    def __init__(self):
        self.seconds, self.epochs = defaultdict(float), defaultdict(int)

    def wrap(self, module, name: str, stage: str):
        original = getattr(module, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started
                self.epochs[stage] += kwargs.get("epochs", 0)

        setattr(module, name, timed)
        return lambda: setattr(module, name, original)


def recall_row(model, data, test) -> str:
    from protocols.evaluation import RankingTask, evaluate

    users = np.flatnonzero((np.diff(test.indptr) > 0) & (np.diff(data.interactions.indptr) > 0))
    task = RankingTask(users=users, history=data.interactions[users], truth=test[users],
                       exclude=data.interactions[users])
    summary = evaluate(model, task, cutoffs=CUTOFFS, metrics=["recall"]).summary
    return " ".join(f"{summary[f'recall@{k}']:.4f}".lstrip("0") for k in CUTOFFS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", choices=sorted(STAGES), default=sorted(STAGES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of the shortened fit")
    parser.add_argument("--pretrain-epochs", type=int, default=1, help="epochs of every pre-training stage")
    parser.add_argument("--full", action="store_true", help="fit the default schedule and report recall")
    parser.add_argument("--recall", action="store_true", help="report recall after a shortened fit too")
    parser.add_argument("--checkpoint-dir", type=Path, default=None, help="resumable per-epoch checkpoints")
    args = parser.parse_args(argv)
    import torch

    import neural._cdl_network as cdl_network
    import neural._cvae_network as cvae_network
    from protocols.registry import get_model_class

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    data, test = load()
    print(f"citeulike-t p10 train: {data.n_users} users x {data.n_items} items, {data.interactions.nnz} "
          f"interactions, bow-tfidf {data.features('bow-tfidf').dim} words (read in "
          f"{time.perf_counter() - started:.1f} s); torch {torch.__version__}, {args.threads} thread(s)")
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    table = ["| model | stage | epochs run | s/epoch | default epochs | projected s |", "|---|---|---|---|---|---|"]
    for name in args.models:
        cls = get_model_class(name)
        defaults = cls().get_params()
        params = {"device": "cpu", "progress": args.full}
        if args.checkpoint_dir is not None:
            params["checkpoint_dir"] = str(args.checkpoint_dir / name)
        if not args.full:
            params.update({key: args.pretrain_epochs for key in set(STAGES[name].values())})
            params["epochs"] = args.epochs
        timer = StageTimer()
        undo = [timer.wrap(cdl_network, "train_dae_layer", "dae"),
                timer.wrap(cvae_network, "train_latent_layer", "latent"),
                timer.wrap(cvae_network, "train_whole_vae", "vae")]
        try:
            model = cls(**params)
            fit_started = time.perf_counter()
            model.fit(data)
            fit_seconds = time.perf_counter() - fit_started
        finally:
            for restore in undo:
                restore()
        projected = 0.0
        for stage, parameter in STAGES[name].items():  # seconds per epoch of the stage, all its layers
            run = params.get(parameter, defaults[parameter])
            per_epoch = timer.seconds[stage] / max(run, 1)
            projected += per_epoch * defaults[parameter]
            table.append(f"| {name} | {stage} ({timer.epochs[stage]} layer-epochs) | {run} | {per_epoch:.2f} | "
                         f"{defaults[parameter]} | {per_epoch * defaults[parameter]:.0f} |")
        epoch_seconds = float(np.median([record["seconds"] for record in model.history_]))
        setup = fit_seconds - sum(timer.seconds.values()) - sum(record["seconds"] for record in model.history_)
        projected += epoch_seconds * defaults["epochs"] + setup
        table.append(f"| {name} | epoch (network + ALS sweep) | {model.epochs_run_} | {epoch_seconds:.2f} | "
                     f"{defaults['epochs']} | {epoch_seconds * defaults['epochs']:.0f} |")
        line = (f"{name}: fit {fit_seconds:.0f} s measured, full default fit projected {projected:.0f} s "
                f"({projected / 60:.1f} min); set-up {setup:.1f} s")
        if args.full or args.recall:
            line += (f"\n  recall@{','.join(map(str, CUTOFFS))}: {recall_row(model, data, test)} "
                     f"(TOIS re-run: {TOIS[name]})")
        print(line, flush=True)
    print("load after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
