"""``python -m protocols enable-suite NAME``: add a paper suite of params.yaml to the pipeline."""
from __future__ import annotations

import argparse

from protocols.paper_suites import enable_suite

HELP = "add a paper suite (paper_suites: in params.yaml) to the pipeline's sections and select it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="a key of params.yaml's paper_suites, e.g. vbpr-paper")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")


def run(args: argparse.Namespace) -> int:
    added = enable_suite(args.params, args.name)
    for line in added:
        print(f"added {line}")
    print(f"{args.params}: suite {args.name!r} selected; `dvc repro` fetches its data and runs it")
    return 0
