"""``python -m datasets list | fetch NAME | prepare NAME | features NAME``: the dataset command line."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tabulate import tabulate

from common.errors import RecAuditError, run_cli
from common.threads import apply_thread_policy
from datasets.fetch import fetch_dataset, mirror_root
from datasets.registry import DatasetSpec, download_size, get_dataset, registered_datasets

DATA_ROOT = Path("data")


def main(argv: list[str] | None = None) -> int:
    apply_thread_policy()  # the feature extractor's torch, the parsers' numpy
    parser = argparse.ArgumentParser(prog="python -m datasets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="registered datasets, their size, side information, licence, local files")
    fetch = commands.add_parser("fetch", help="copy (mirror) or download a dataset's raw files, verified")
    fetch.add_argument("name")
    fetch.add_argument("--out", type=Path, help="destination folder (default data/raw/NAME)")
    prepare = commands.add_parser("prepare", help="parse raw files into the canonical prepared form")
    prepare.add_argument("name")
    prepare.add_argument("--raw", type=Path, help="raw folder (default data/raw/NAME)")
    prepare.add_argument("--out", type=Path, help="destination folder (default data/prepared/NAME)")
    prepare.add_argument("--params", type=Path, help="params file with datasets.NAME options (default params.yaml)")
    features = commands.add_parser("features", help="extract item image features with a pretrained network")
    features.add_argument("name")
    features.add_argument("--extractor", default="efficientnet-lite0", help="extractor name (default efficientnet-lite0)")
    features.add_argument("--prepared", type=Path, help="prepared folder (default data/prepared/NAME)")
    features.add_argument("--raw", type=Path, help="raw folder holding the images (default data/raw/NAME)")
    features.add_argument("--out", type=Path, help="destination folder (default data/features/NAME/EXTRACTOR)")
    features.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                          help="auto: CUDA when available, else CPU")
    features.add_argument("--batch-size", type=int, default=None, help="images per batch (default 8 on CPU, 64 on CUDA)")
    features.add_argument("--workers", type=int, default=None, help="image loading threads (default: up to 4)")
    args = parser.parse_args(argv)
    if args.command == "list":
        print(dataset_table())
    elif args.command == "fetch":
        out = args.out or DATA_ROOT / "raw" / args.name
        result = fetch_dataset(args.name, out, cache=DATA_ROOT / "downloads")
        print(f"{result.dataset}: {result.n_files} files ({result.n_bytes / 1e6:.1f} MB) verified into "
              f"{result.destination} from {result.source}")
    elif args.command == "prepare":
        run_prepare(args.name, args.raw, args.out, args.params)
    else:
        run_features(args)
    return 0


def dataset_table() -> str:
    rows = []
    for spec in registered_datasets().values():
        counts, origin = _counts(spec)
        rows.append([spec.name, *(f"{n:,}" if n is not None else "?" for n in counts), origin, download_size(spec, mirror_root()),
                     ", ".join(spec.side_information) or "-", spec.licence_short, _raw_status(spec)])
    headers = ["name", "users", "items", "interactions", "counts", "download", "side information", "licence",
               "raw files"]
    return tabulate(rows, headers=headers, colalign=("left", "right", "right", "right", "left", "right"))


def _counts(spec: DatasetSpec) -> tuple[tuple[int | None, ...], str]:
    meta_path = DATA_ROOT / "prepared" / spec.name / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return (meta.get("n_users"), meta.get("n_items"), meta.get("n_interactions")), "prepared"
    return (spec.published_users, spec.published_items, spec.published_interactions), "published"


def _raw_status(spec: DatasetSpec) -> str:
    places = []
    local = DATA_ROOT / "raw" / spec.name
    if local.is_dir():
        n_missing = sum(not (local / f.name).is_file() for f in spec.files)
        places.append("local" if n_missing == 0 else f"local ({n_missing} missing)")
    root = mirror_root()
    if root is not None:
        n_missing = sum(not (root / f.mirror).is_file() for f in spec.files)
        if n_missing < len(spec.files):
            places.append("mirror" if n_missing == 0 else f"mirror ({n_missing} missing)")
    return ", ".join(places) or "no"


def preprocessing_options(spec: DatasetSpec, params_path: Path | None) -> dict:
    """The registry's default preprocessing with ``datasets.<NAME>`` of the params file merged over it.

    The whole file is checked first (``protocols.settings``, as for every command), which also
    checks each dataset's option names and types.
    """
    from protocols.params import load_params

    options = dict(spec.default_preprocessing)
    path = params_path or Path("params.yaml")
    if not path.is_file():
        if params_path is not None:
            raise RecAuditError(f"params file {path} does not exist; give an existing file or leave out --params")
        return options
    options.update((load_params(path).get("datasets") or {}).get(spec.name) or {})
    return options


def run_prepare(name: str, raw: Path | None, out: Path | None, params: Path | None) -> None:
    spec = get_dataset(name)
    if spec.unavailable is not None:
        raise RecAuditError(f"{name} cannot be prepared here (RecAudit has no parser for it): {spec.unavailable}")
    options = preprocessing_options(spec, params)
    raw = raw or DATA_ROOT / "raw" / name
    out = out or DATA_ROOT / "prepared" / name
    if not raw.is_dir():
        raise RecAuditError(f"no raw files for {name} at {raw}; run `python -m datasets fetch {name}` first")
    from datasets.prepare import prepare_dataset  # imported here: `list` and `fetch` must not need the parsers

    data = prepare_dataset(name, raw, out, options)
    print(f"{name}: {data.n_users:,} users, {data.n_items:,} items, {len(data.interactions):,} interactions -> {out}")


def run_features(args: argparse.Namespace) -> None:
    from datasets.extractors import get_extractor  # light: no torch

    spec = get_extractor(args.extractor)
    prepared = args.prepared or DATA_ROOT / "prepared" / args.name
    if not prepared.is_dir():
        if args.prepared is None and args.name not in registered_datasets():
            get_dataset(args.name)  # the standard unknown-dataset error
        raise RecAuditError(f"no prepared dataset at {prepared}; run `python -m datasets prepare {args.name}` first"
                            " (or pass --prepared)")
    raw = args.raw or DATA_ROOT / "raw" / args.name
    out = args.out or DATA_ROOT / "features" / args.name / spec.name
    from datasets.extraction import extract_features  # imports torch: only for this command

    features = extract_features(prepared, raw, spec.name, out, device=args.device, batch_size=args.batch_size,
                                workers=args.workers, dataset=args.name)
    print(f"{args.name}: {features.key}, {int(features.present.sum()):,} of {features.n_items:,} items with an image, "
          f"{features.dim} dimensions -> {out}")


if __name__ == "__main__":
    run_cli(main)
