"""RecAudit side by side with RecBole 1.2.1 and a plain numpy reference, on the same work.

Not collected by pytest. Run from the repository root with the project venv::

    RECAUDIT_MIRROR=../shared/data python tests/benchmarks/bench_side_by_side.py [--repeats 3]
        [--threads 1] [--rows ease itemknn bprmf multvae neumf slim]
        [--recbole-python /tmp/rbvenv/bin/python] [--slim-alpha 0.2] [--slim-l1-ratio 0.02]

Data: the LCFN split of MovieLens-1M (dataset ``movielens-1m-lcfn``, protocol ``given`` with
``given: lcfn`` and ``validation_fraction: 0``, so train is the authors' whole training part),
built in a temporary folder the way the tests build it (``tests.mirror_raw.link_raw``, the
dataset's parser, ``datasets.prepare.build_prepared``, ``protocols.splits.make_split``).
Every side fits on the same train interactions; evaluation ranks all items for every user
with a test item, the user's training items excluded.

Each row runs ``--repeats`` times, interleaved (ours, RecBole, numpy, ours, RecBole, numpy,
...) so that a change in the machine's load hits every side alike; the table shows the
median of each side and the ratios RecBole/ours and numpy/ours (above 1: ours is faster).
The table also prints the thread count, the machine's core count and the load average at
start and end: on a busy machine the numbers move.

RecBole is not a dependency of this project. It runs in a separate interpreter
(``--recbole-python``, default ``/tmp/rbvenv/bin/python``), one long-lived subprocess of this
script (``--recbole-worker``): it reads the split from RecBole atomic files written to a
temporary folder (``lcfn.train.inter``; ``lcfn.test.inter``; ``lcfn.valid.inter`` is a copy of
the test file, which RecBole needs to exist and which, being the same items, leaves the items
excluded at test time = train), builds its dataset and data loaders untimed, and prints one
JSON object on stdout per request with its timings. Its venv, as built for this script::

    python3.11 -m venv /tmp/rbvenv
    /tmp/rbvenv/bin/pip install torch==2.13.0          # CPU wheel from local disk
    /tmp/rbvenv/bin/pip install recbole==1.2.1
    /tmp/rbvenv/bin/pip install "numpy<2" "pandas<3"   # pins: numpy 1.26.4, pandas 2.3.3

RecBole 1.2.1 uses ``np.float_`` (removed in numpy 2), hence numpy 1.26.4, and pandas 3
requires numpy 2, hence pandas 2.3.3; the rest is what pip resolved (scipy 1.17.1,
scikit-learn 1.9.1). Without RecBole in that interpreter the script says how to install it in
one line and prints the ours and numpy columns only.

Threads: ``--threads N`` (default 1) sets OMP/OPENBLAS/MKL_NUM_THREADS in this process and
in the RecBole subprocess before numpy or torch load, and ``torch.set_num_threads(N)`` on
both sides. RecAudit's neural models train on ``training_threads`` threads (one by default,
``neural/training.py``); the benchmark sets that attribute to N on each instance, so both
sides train on N threads.

What each side does, row by row (ours = RecAudit; RB = RecBole; np = the numpy reference):

1. **EASE fit**, l2 = 500. ours: ``make_model("ease", {"l2": 500.0}).fit(train CSR)`` (float32
   Gram, in-place Cholesky inverse). RB: ``EASE(config, dataset)`` with ``reg_weight: 500``
   (its constructor is the fit: CSR from its dataset, float32 ``X.T @ X``, ``np.linalg.inv``).
   np: densify X to float64, Gram ``X.T @ X`` + 500 I, ``np.linalg.inv``, ``B = -P / diag(P)``,
   zero diagonal. NDCG@10 of each fitted model is computed untimed, once, as a check.
2. **ItemKNN cosine**, topk 100, shrink 0, no feature weighting: fit, full evaluation
   (NDCG@10 over all items, training items excluded, all test users) and their sum. ours:
   ``make_model("itemknn", {"similarity": "cosine", "topk": 100, "shrink": 0.0,
   "feature_weighting": "none"})`` (TOIS variant: ``+ 1e-6`` in the cosine denominator, as
   RecBole) and ``protocols.evaluation.evaluate`` (cutoff 10, metric ndcg, its default batch of
   2^25 score entries). RB: ``ItemKNN`` (``k: 100, shrink: 0``), whose constructor also
   precomputes every user's scores (``X @ W``), then ``Trainer.evaluate`` on its full-sort test
   loader, ``eval_batch_size`` 2^25 (the same score entries per batch as ours; its default
   4096 would score one user per batch). np: dense float32 X, Gram, cosine with ``+ 1e-6``,
   zero diagonal, top 100 per target column (argpartition), then ``X @ W`` for the test
   users, training items set to -inf, top 10 by argpartition + sort, NDCG@10.
3. **BPR-MF, one epoch**: 64 factors, 1,024 triples per batch, Adam lr 0.001, one uniform
   negative per positive (never a training item of the user), no regularisation (RecBole's BPR
   has none: weight_decay 0; ours is given l2 = 0). An epoch is as many triples as training
   interactions: RB shuffles the interactions and samples a negative for each; ours draws
   (user, positive) pairs with replacement (the paper's bootstrap). Initialisations differ
   (RecBole: Xavier normal; ours: N(0, 0.1^2)), which moves the loss, not the work. Timed: ours
   ``history_[0]["seconds"]`` of ``make_model("bprmf", ...)`` fitted for 1 epoch (the epoch loop,
   its sampling included; the sampler set-up and network initialisation excluded); RB
   ``Trainer._train_epoch`` on its training loader (its per-batch sampling included; dataset,
   loader and model construction excluded). A fresh model for every run.
4. **Mult-VAE, one epoch**: the paper's [I-600-200-600-I] with tanh, input dropout 0.5,
   batches of 500 users, Adam lr 0.001, KL annealing to 0.2 over 200,000 steps. ours:
   ``make_model("multvae", {"hidden": 600, "latent": 200, ...})``; RB: ``MultiVAE`` with
   ``mlp_hidden_size: [600]`` and ``latent_dimension: 400`` (RecBole's encoder outputs mu and
   log-variance in one layer of that width and samples a z of half of it, so 400 gives the
   paper's 200-dimensional z), its user data loader of 500 users per batch. Timed as row 3.
5. **NeuMF, one epoch**, no pre-training: GMF embeddings 8, MLP embeddings 32 and tower
   [64, 32, 16, 8], no dropout, 4 uniform negatives per positive resampled every epoch, batch
   256, Adam lr 0.001, BCE on logits. ours: ``make_model("neumf", {"factors": 8,
   "mlp_layers": 3, "negatives": 4, "batch_size": 256, ...})``; RB: ``NeuMF`` with
   ``mf_embedding_size: 8, mlp_embedding_size: 32, mlp_hidden_size: [32, 16, 8],
   dropout_prob: 0`` and ``train_neg_sample_args: {sample_num: 4}``, ``train_batch_size: 256``.
   RecBole keeps each positive with its 4 negatives in one batch, so its batches hold
   floor(256 / 5) = 51 positives = 255 rows (ours: 256 shuffled rows); 15,613 batches
   against ours 15,552. Timed as row 3.
6. **SLIM ElasticNet fit**. RB: ``SLIMElastic`` with ``alpha`` / ``l1_ratio`` (default 0.2 /
   0.02, RecBole's own defaults; ``--slim-alpha`` / ``--slim-l1-ratio``), ``positive_only:
   True``, ``hide_item: True``: one scikit-learn ``ElasticNet(alpha, l1_ratio, positive=True,
   fit_intercept=False, max_iter=100, tol=1e-4, selection="random")`` per item on X with the
   item's column zeroed, all coefficients kept. Mapping to ours (``baselines/slim.py``): ours
   minimises the same scikit-learn objective ``1/(2n) ||x_j - X w||^2 + alpha l1_ratio ||w||_1 +
   alpha (1 - l1_ratio)/2 ||w||^2`` with ``w >= 0, w_j = 0``, so ``l1_ratio`` is passed as is,
   ``tol`` 1e-4 and ``max_iter`` 100 likewise (gap <= tol ||x_j||^2, at most 100 sweeps), and
   ``topk`` = the number of items (keep every non-zero, as RecBole). Only n differs: RecBole's
   matrix has one more row (its padding user 0, all zeros), so ``alpha_ours = alpha *
   n_RecBole / n_ours`` makes the unnormalised penalties ``l1 = n alpha l1_ratio`` and ``l2 =
   n alpha (1 - l1_ratio)`` identical. The solvers differ (ours: working sets on the Gram
   matrix; scikit-learn: coordinate descent in random order on the sparse X); the check line
   shows both solutions' non-zeros and NDCG@10 (untimed, once).

No row times something different on one side: where settings could not be made equal, the
row's note says by how much they differ (NeuMF's 255 against 256 rows per batch).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATASET = "movielens-1m-lcfn"
RB_NAME = "lcfn"  # RecBole's dataset name: files lcfn.{train,valid,test}.inter
DEFAULT_RECBOLE_PYTHON = "/tmp/rbvenv/bin/python"
INSTALL_HINT = ('python3.11 -m venv /tmp/rbvenv && /tmp/rbvenv/bin/pip install torch==2.13.0 && '
                '/tmp/rbvenv/bin/pip install recbole==1.2.1 "numpy<2" "pandas<3"')
EVAL_BATCH_ENTRIES = 2**25  # = protocols.evaluation.DEFAULT_MAX_BATCH_ENTRIES, given to RecBole too
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

EASE_L2 = 500.0
KNN_TOPK, KNN_SHRINK = 100, 0.0
BPR = {"factors": 64, "batch_size": 1024, "lr": 0.001}
VAE = {"hidden": 600, "latent": 200, "dropout": 0.5, "batch_size": 500, "lr": 0.001, "beta_cap": 0.2,
       "total_anneal_steps": 200000}
NEUMF = {"factors": 8, "mlp_layers": 3, "negatives": 4, "batch_size": 256, "lr": 0.001}
SLIM_TOL, SLIM_MAX_ITER = 1e-4, 100

ROWS = ("ease", "itemknn", "bprmf", "multvae", "neumf", "slim")
# (row, key of the timings, what the table line says was timed)
LINES = (
    ("ease", "fit", "EASE fit (l2 500)"),
    ("itemknn", "fit", "ItemKNN cosine fit (topk 100, shrink 0)"),
    ("itemknn", "eval", "ItemKNN full evaluation (NDCG@10, all items)"),
    ("itemknn", "total", "ItemKNN fit + full evaluation"),
    ("bprmf", "epoch", "BPR-MF one epoch (64 f., batch 1024, 1 neg.)"),
    ("multvae", "epoch", "Mult-VAE one epoch (600-200, 500 users/batch)"),
    ("neumf", "epoch", "NeuMF one epoch (batch 256, 4 negatives)"),
    ("slim", "fit", "SLIM ElasticNet fit"),
)


def set_thread_variables(threads: int) -> None:
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# ======================================================================== RecBole side
# Runs under --recbole-python: standard library at module level, RecBole imported here only.

def recbole_config(row: str, args: dict) -> tuple[str, dict]:
    """(RecBole model name, its config entries) for ``row``."""
    if row == "ease":
        return "EASE", {"reg_weight": EASE_L2}
    if row == "itemknn":
        return "ItemKNN", {"k": KNN_TOPK, "shrink": KNN_SHRINK, "knn_method": "item"}
    if row == "bprmf":
        return "BPR", {"embedding_size": BPR["factors"], "train_batch_size": BPR["batch_size"],
                       "learning_rate": BPR["lr"], "weight_decay": 0.0, "learner": "adam",
                       "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}}
    if row == "multvae":
        return "MultiVAE", {"mlp_hidden_size": [VAE["hidden"]], "latent_dimension": 2 * VAE["latent"],
                            "dropout_prob": VAE["dropout"], "anneal_cap": VAE["beta_cap"],
                            "total_anneal_steps": VAE["total_anneal_steps"], "train_batch_size": VAE["batch_size"],
                            "learning_rate": VAE["lr"], "weight_decay": 0.0, "learner": "adam",
                            "train_neg_sample_args": None}
    if row == "neumf":
        embedding = NEUMF["factors"] * 2 ** (NEUMF["mlp_layers"] - 1)  # 32: half of the tower's 64 input
        hidden = [NEUMF["factors"] * 2 ** (NEUMF["mlp_layers"] - 1 - k) for k in range(NEUMF["mlp_layers"])]
        return "NeuMF", {"mf_embedding_size": NEUMF["factors"], "mlp_embedding_size": embedding,
                         "mlp_hidden_size": hidden, "dropout_prob": 0.0, "use_pretrain": False,
                         "train_batch_size": NEUMF["batch_size"], "learning_rate": NEUMF["lr"],
                         "weight_decay": 0.0, "learner": "adam",
                         "train_neg_sample_args": {"distribution": "uniform", "sample_num": NEUMF["negatives"]}}
    if row == "slim":
        return "SLIMElastic", {"alpha": args["slim_alpha"], "l1_ratio": args["slim_l1_ratio"],
                               "positive_only": True, "hide_item": True}
    raise ValueError(f"unknown row {row!r}")


def recbole_worker(data_dir: str, threads: int) -> int:
    """Serve requests (one JSON object per stdin line) and answer one JSON object per line."""
    answer_to = sys.stdout
    sys.stdout = sys.stderr  # anything RecBole prints goes to the log, not into the answers

    def send(payload: dict) -> None:
        answer_to.write(json.dumps(payload) + "\n")
        answer_to.flush()

    try:
        import numpy as np
        import torch
        import recbole
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.utils import get_model, get_trainer, init_seed
    except ImportError as error:
        send({"error": f"{type(error).__name__}: {error}"})
        return 1
    import warnings

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    loaded: dict = {}

    def prepare(row: str, args: dict):
        if row not in loaded:
            model_name, entries = recbole_config(row, args)
            config = Config(model=model_name, dataset=RB_NAME, config_dict={
                "data_path": data_dir, "checkpoint_dir": str(Path(data_dir) / "saved"),
                "benchmark_filename": ["train", "valid", "test"],
                "load_col": {"inter": ["user_id", "item_id"]},
                "use_gpu": False, "show_progress": False, "state": "ERROR", "log_wandb": False,
                "eval_args": {"mode": "full", "order": "RO", "group_by": "user", "split": None},
                "metrics": ["NDCG"], "topk": [10], "valid_metric": "NDCG@10", "metric_decimal_place": 6,
                "eval_batch_size": EVAL_BATCH_ENTRIES, "worker": 0, "seed": 0, "reproducibility": True,
                **entries})
            init_seed(0, True)
            dataset = create_dataset(config)
            train, _, test = data_preparation(config, dataset)
            loaded[row] = (config, get_model(model_name), train, test)
        return loaded[row]

    send({"ready": True, "recbole": recbole.__version__, "torch": torch.__version__, "numpy": np.__version__,
          "torch_threads": torch.get_num_threads()})
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        row = request["row"]
        try:
            config, model_class, train, test = prepare(row, request["args"])
            init_seed(int(request["seed"]), True)
            result: dict = {}
            started = time.perf_counter()
            model = model_class(config, train.dataset).to(config["device"])
            constructed = time.perf_counter() - started
            trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
            if row in ("ease", "itemknn", "slim"):
                result["fit"] = constructed
            if row == "itemknn":
                started = time.perf_counter()
                scores = trainer.evaluate(test, load_best_model=False, show_progress=False)
                result["eval"] = time.perf_counter() - started
                result["total"] = result["fit"] + result["eval"]
                result["ndcg@10"] = float(scores["ndcg@10"])
            elif row in ("ease", "slim") and request.get("check"):
                result["ndcg@10"] = float(trainer.evaluate(test, load_best_model=False,
                                                           show_progress=False)["ndcg@10"])
                if row == "slim":
                    result["nnz"] = int(model.item_similarity.nnz)
                    result["rows"] = int(model.interaction_matrix.shape[0])
            elif row in ("bprmf", "multvae", "neumf"):
                started = time.perf_counter()
                loss = trainer._train_epoch(train, 0, show_progress=False)
                result["epoch"] = time.perf_counter() - started
                result["batches"] = len(train)
                result["loss"] = float(loss if not isinstance(loss, tuple) else sum(loss))
            send({"row": row, **result})
        except Exception as error:  # reported in the table, not fatal to the other rows
            send({"row": row, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"})
    return 0


class RecBoleSide:
    """The RecBole subprocess seen from the benchmark: ``run(row, ...)`` returns its timings."""

    def __init__(self, python: str, data_dir: Path, threads: int):
        self.process = None
        self.info: dict = {}
        self.missing = None
        self.log_path = data_dir / "recbole-worker.log"
        env = {**os.environ, **{name: str(threads) for name in THREAD_VARIABLES}}
        env.pop("PYTHONPATH", None)
        try:
            probe = subprocess.run([python, "-c", "import recbole"], capture_output=True, text=True, env=env)
        except OSError as error:
            self.missing = f"{python} does not run ({error.strerror})"
            return
        if probe.returncode != 0:
            self.missing = f"{python} cannot import recbole"
            return
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([python, str(Path(__file__).resolve()), "--recbole-worker", str(data_dir),
                                         "--threads", str(threads)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=data_dir, env=env)
        self.info = self._read() or {"error": "no answer"}
        if "error" in self.info:
            self.missing = f"{python}: {self.info['error']}"
            self.close()

    @property
    def available(self) -> bool:
        return self.process is not None

    def _read(self) -> dict | None:
        while True:
            line = self.process.stdout.readline()
            if not line:
                return None
            try:
                payload = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(payload, dict):
                return payload

    def run(self, row: str, seed: int, check: bool, args: dict) -> dict:
        if not self.available:
            return {}
        self.process.stdin.write(json.dumps({"row": row, "seed": seed, "check": check, "args": args}) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        if answer is None:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:] if self.log_path.exists() else []
            self.close()
            return {"error": f"RecBole worker exited ({' '.join(tail)[:200]})"}
        answer.pop("row", None)
        return answer

    def close(self) -> None:
        if self.process is not None:
            try:
                self.process.stdin.write(json.dumps({"quit": True}) + "\n")
                self.process.stdin.flush()
                self.process.wait(timeout=60)
            except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
                self.process.kill()
                self.process.wait()
            self.process = None
            self.log.close()


# ======================================================================== data

def build_split(workdir: Path):
    """(train CSR, test CSR, card) of the LCFN split, built as the tests build splits."""
    from datasets.parsers import PARSERS
    from datasets.prepare import build_prepared, resolve_options
    from datasets.registry import get_dataset
    from protocols.evaluation import interaction_matrix
    from protocols.splits import make_split
    from tests.mirror_raw import link_raw

    raw_dir = link_raw(DATASET, workdir / "raw")
    raw = PARSERS[DATASET](raw_dir)
    data = build_prepared(DATASET, raw, resolve_options(get_dataset(DATASET).default_preprocessing), raw_dir)
    split = make_split(data, "given", 0, {"given": "lcfn", "validation_fraction": 0.0})
    shape = (split.n_users, split.n_items)
    return interaction_matrix([split.train], *shape), interaction_matrix([split.test], *shape)


def write_atomic_files(train, test, folder: Path) -> int:
    """RecBole's atomic .inter files of the split; returns the rows of RecBole's user x item
    matrix (the users present in the files, plus its padding user 0)."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)

    def write(matrix, name):
        coo = matrix.tocoo()
        with open(folder / f"{RB_NAME}.{name}.inter", "w") as handle:
            handle.write("user_id:token\titem_id:token\n")
            handle.writelines(f"{u}\t{i}\n" for u, i in zip(coo.row.tolist(), coo.col.tolist()))

    write(train, "train")
    write(test, "valid")
    write(test, "test")
    present = np.union1d(np.flatnonzero(np.diff(train.indptr)), np.flatnonzero(np.diff(test.indptr)))
    return len(present) + 1


# ======================================================================== our side

def ours_model(row: str, args: dict, n_items: int, seed: int):
    from protocols.registry import make_model

    neural = {"epochs": 1, "device": "cpu", "seed": seed}
    if row == "ease":
        return make_model("ease", {"l2": EASE_L2})
    if row == "itemknn":
        return make_model("itemknn", {"similarity": "cosine", "topk": KNN_TOPK, "shrink": KNN_SHRINK,
                                      "feature_weighting": "none"})
    if row == "bprmf":
        model = make_model("bprmf", {**BPR, "l2": 0.0, "optimizer": "adam", **neural})
    elif row == "multvae":
        model = make_model("multvae", {**VAE, "lam": 0.0, **neural})
    elif row == "neumf":
        model = make_model("neumf", {**NEUMF, "optimizer": "adam", "pretrain": False, **neural})
    elif row == "slim":
        return make_model("slim", {"alpha": args["slim_alpha_ours"], "l1_ratio": args["slim_l1_ratio"],
                                   "topk": n_items, "tol": SLIM_TOL, "max_iter": SLIM_MAX_ITER})
    else:
        raise ValueError(row)
    model.training_threads = args["threads"]  # the class default is 1; train on --threads like RecBole
    return model


def ours_run(row: str, data: dict, args: dict, seed: int, check: bool) -> dict:
    from protocols.evaluation import evaluate

    train, task = data["train"], data["task"]
    model = ours_model(row, args, train.shape[1], seed)
    result: dict = {}
    started = time.perf_counter()
    model.fit(train)
    elapsed = time.perf_counter() - started
    if row in ("ease", "slim", "itemknn"):
        result["fit"] = elapsed
    else:
        result["epoch"] = model.history_[0]["seconds"]
        result["loss"] = model.history_[0]["loss"]
    if row == "itemknn":
        started = time.perf_counter()
        scores = evaluate(model, task, [10], metrics=["ndcg"])
        result["eval"] = time.perf_counter() - started
        result["total"] = result["fit"] + result["eval"]
        result["ndcg@10"] = scores.summary["ndcg@10"]
    elif row in ("ease", "slim") and check:
        result["ndcg@10"] = evaluate(model, task, [10], metrics=["ndcg"]).summary["ndcg@10"]
        if row == "slim":
            result["nnz"] = int(model.item_weights_.nnz)
            result["rows"] = int(train.shape[0])
            result["unconverged"] = int(model.unconverged_)
    return result


# ======================================================================== numpy reference

def numpy_ndcg_at_10(scores, data: dict) -> float:
    """Mean NDCG@10 (binary gains, ideal DCG of min(|truth|, 10) hits) of dense ``scores`` whose
    excluded entries are already -inf; rows are ``data["users"]``."""
    import numpy as np

    k = 10
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    truth = data["truth_dense"]
    hits = np.take_along_axis(truth, top, axis=1)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discounts
    ideal = np.cumsum(discounts)[np.minimum(truth.sum(axis=1), k) - 1]
    return float(np.mean(dcg / ideal))


def numpy_run(row: str, data: dict, check: bool) -> dict | None:
    import numpy as np

    train = data["train"]
    users = data["users"]
    if row == "ease":
        started = time.perf_counter()
        x = train.toarray().astype(np.float64)
        gram = x.T @ x
        gram[np.diag_indices_from(gram)] += EASE_L2
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)
        np.fill_diagonal(weights, 0.0)
        result = {"fit": time.perf_counter() - started}
        if check:
            scores = x[users] @ weights
            scores[data["history_dense"]] = -np.inf
            result["ndcg@10"] = numpy_ndcg_at_10(scores, data)
        return result
    if row == "itemknn":
        started = time.perf_counter()
        x = train.toarray()  # float32
        gram = x.T @ x
        norms = np.sqrt(np.diag(gram))
        similarity = gram / (np.outer(norms, norms) + 1e-6)
        np.fill_diagonal(similarity, 0.0)
        neighbours = np.argpartition(-similarity, KNN_TOPK - 1, axis=0)[:KNN_TOPK]  # per target column
        columns = np.arange(similarity.shape[1])[None, :]
        weights = np.zeros_like(similarity)
        weights[neighbours, columns] = similarity[neighbours, columns]
        fit = time.perf_counter() - started
        started = time.perf_counter()
        scores = x[users] @ weights
        scores[data["history_dense"]] = -np.inf
        ndcg = numpy_ndcg_at_10(scores, data)
        evaluation = time.perf_counter() - started
        return {"fit": fit, "eval": evaluation, "total": fit + evaluation, "ndcg@10": ndcg}
    return None


# ======================================================================== the table

def median_or_none(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or denominator is None or denominator <= 0:
        return "-"
    return f"{numerator / denominator:.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per row; the median is shown")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/torch threads on every side")
    parser.add_argument("--rows", nargs="*", choices=ROWS, default=list(ROWS))
    parser.add_argument("--recbole-python", default=DEFAULT_RECBOLE_PYTHON,
                        help="interpreter with recbole 1.2.1 installed (not the project venv)")
    parser.add_argument("--slim-alpha", type=float, default=0.2, help="RecBole SLIMElastic alpha (its default)")
    parser.add_argument("--slim-l1-ratio", type=float, default=0.02, help="SLIMElastic l1_ratio (its default)")
    parser.add_argument("--recbole-worker", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    set_thread_variables(args.threads)  # before numpy, scipy or torch load
    if args.recbole_worker:
        return recbole_worker(args.recbole_worker, args.threads)

    mirror = os.environ.get("RECAUDIT_MIRROR")
    if not mirror:
        print("set RECAUDIT_MIRROR to the data mirror (e.g. ../shared/data)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    load_start = load_average()
    import numpy as np
    import torch

    from protocols.evaluation import RankingTask

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-side-by-side-") as temporary:
        workdir = Path(temporary)
        started = time.perf_counter()
        train, test = build_split(workdir)
        users = np.flatnonzero(np.diff(test.indptr))
        task = RankingTask(users=users, history=train[users], truth=test[users], exclude=train[users])
        data = {"train": train, "task": task, "users": users,
                "history_dense": train[users].toarray() > 0, "truth_dense": test[users].toarray() > 0}
        recbole_rows = write_atomic_files(train, test, workdir / RB_NAME)
        print(f"{DATASET}/given (given: lcfn, validation_fraction 0): {train.shape[0]} users x {train.shape[1]} "
              f"items, {train.nnz:,} train / {test.nnz:,} test interactions, {len(users)} test users "
              f"(built in {time.perf_counter() - started:.1f} s)", flush=True)
        settings = {"threads": args.threads, "slim_alpha": args.slim_alpha, "slim_l1_ratio": args.slim_l1_ratio,
                    "slim_alpha_ours": args.slim_alpha * recbole_rows / train.shape[0]}
        recbole = RecBoleSide(args.recbole_python, workdir, args.threads)
        if recbole.available:
            print(f"RecBole {recbole.info['recbole']} (torch {recbole.info['torch']}, numpy {recbole.info['numpy']}, "
                  f"{recbole.info['torch_threads']} torch thread(s)) from {args.recbole_python}", flush=True)
        else:
            print(f"RecBole columns skipped ({recbole.missing}); install it with: {INSTALL_HINT}", flush=True)
        print(f"ours: torch {torch.__version__}, numpy {np.__version__}, {torch.get_num_threads()} torch thread(s)",
              flush=True)

        runs: dict = {row: {"ours": [], "recbole": [], "numpy": []} for row in args.rows}
        try:
            for row in args.rows:
                for repeat in range(args.repeats):
                    check = repeat == 0
                    results = runs[row]
                    results["ours"].append(ours_run(row, data, settings, repeat, check))
                    results["recbole"].append(recbole.run(row, repeat, check, settings))
                    results["numpy"].append(numpy_run(row, data, check))
                    key = "total" if row == "itemknn" else next(k for r, k, _ in LINES if r == row)
                    shown = [f"{side} {seconds(result.get(key)) if result else '-'}" for side, result in
                             (("ours", results["ours"][-1]), ("RecBole", results["recbole"][-1]),
                              ("numpy", results["numpy"][-1]))]
                    print(f"  {row} run {repeat + 1}/{args.repeats}: {', '.join(shown)} s; load {load_average()}",
                          flush=True)
        finally:
            recbole.close()
        load_end = load_average()

    print()
    print(f"RecAudit vs RecBole 1.2.1 vs numpy, {DATASET}/given, median of {args.repeats} interleaved run(s)")
    print(f"threads per side: {args.threads}; machine: {os.cpu_count()} cores; load average (1, 5, 15 min) "
          f"at start {load_start}, at end {load_end}")
    header = (f"{'what was timed':<47} {'ours s':>8} {'RecBole s':>10} {'numpy s':>8} {'RecBole/ours':>13} "
              f"{'numpy/ours':>11}")
    print(header)
    print("-" * len(header))
    notes = []
    for row, key, label in LINES:
        if row not in runs:
            continue
        sides = {}
        for side in ("ours", "recbole", "numpy"):
            records = [r for r in runs[row][side] if r]
            errors = sorted({r["error"] for r in records if "error" in r})
            for error in errors:
                notes.append(f"{label}: {side} failed: {error}")
            sides[side] = median_or_none([r.get(key) for r in records if "error" not in r])
        if row == "slim" and key == "fit":
            label = f"SLIM ElasticNet fit (alpha {args.slim_alpha:g}, l1 {args.slim_l1_ratio:g})"
        recbole_cell = seconds(sides["recbole"]) if recbole.available or sides["recbole"] is not None else "n/a"
        print(f"{label:<47} {seconds(sides['ours']):>8} {recbole_cell:>10} {seconds(sides['numpy']):>8} "
              f"{ratio(sides['recbole'], sides['ours']):>13} {ratio(sides['numpy'], sides['ours']):>11}")
    print()
    print("checks (first run; untimed for EASE and SLIM):")
    for row in runs:
        first = {side: (runs[row][side][0] or {}) if runs[row][side] else {} for side in ("ours", "recbole", "numpy")}
        if row in ("ease", "itemknn", "slim"):
            values = ", ".join(f"{side} {first[side]['ndcg@10']:.4f}" for side in first if "ndcg@10" in first[side])
            print(f"  {row}: NDCG@10 {values or '-'}")
        if row == "slim":
            ours, rb = first["ours"], first["recbole"]
            print(f"  slim: ours alpha {settings['slim_alpha_ours']:.6g} on {ours.get('rows', '?')} rows = RecBole "
                  f"alpha {args.slim_alpha:g} on {rb.get('rows', recbole_rows)} rows; non-zero weights ours "
                  f"{ours.get('nnz', '-')} ({ours.get('unconverged', '-')} columns unconverged), RecBole "
                  f"{rb.get('nnz', '-')}")
        if row in ("bprmf", "multvae", "neumf"):
            ours, rb = first["ours"], first["recbole"]
            rb_mean = rb["loss"] / rb["batches"] if "loss" in rb and rb.get("batches") else float("nan")
            print(f"  {row}: mean batch loss of the epoch ours {ours.get('loss', float('nan')):.4f}, RecBole "
                  f"{rb_mean:.4f} ({rb.get('batches', '?')} batches)")
    if notes:
        print("errors:")
        for note in notes:
            print(f"  {note}")
    print("notes: RecBole's ItemKNN fit also computes every user's scores (X @ W), which its evaluation "
          "then reads; compare the fit + evaluation line. NeuMF: RecBole's batches are 255 rows (51 "
          "positives x 5), ours 256.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
