"""``python -m protocols <command>``: split, models, evaluate, tune, new-model, model-sources, enable-suite.

Each command lives in its own ``protocols/cli_<command>.py`` module exposing
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int | None``. Only the
module of the command being run is imported, so ``evaluate`` never loads Optuna.
"""
from __future__ import annotations

from common.cli import dispatch
from common.errors import run_cli
from common.threads import apply_thread_policy

COMMANDS = {
    "split": ("protocols.cli_split", "compute one split of params.yaml and write it"),
    "models": ("protocols.cli_models", "list the registered models and their search spaces"),
    "evaluate": ("protocols.cli_evaluate", "fit a model on a split and evaluate it once on the test part"),
    "tune": ("protocols.cli_tune", "search a model's hyperparameters on the validation part"),
    "new-model": ("protocols.cli_new_model", "write a new model file and its test from a template"),
    "model-sources": ("protocols.cli_model_sources", "hash each model's source files, for per-model DVC deps"),
    "enable-suite": ("protocols.cli_enable_suite", "add a paper suite of params.yaml to the pipeline and select it"),
}


def main(argv: list[str] | None = None) -> int | None:
    apply_thread_policy()  # before a command module imports numpy, scipy or torch
    return dispatch("python -m protocols", __doc__.splitlines()[0], COMMANDS, argv)


if __name__ == "__main__":
    run_cli(main)
