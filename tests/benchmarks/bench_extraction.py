"""Images per second and peak memory of the image feature extractors, per runtime and batch size, CPU.

Not collected by pytest. Run from the repository root::

    RECAUDIT_MIRROR=../shared/data python tests/benchmarks/bench_extraction.py [--images 256]
        [--extractor efficientnet-lite0] [--runtimes onnxruntime torch-folded torch] [--batch-sizes 1 8 16 32]
        [--workers 2] [--threads 2]

Reads the first ``--images`` ML-1M posters of ``$RECAUDIT_MIRROR/movielens-1m-images/MovieImages/``
(sha256-verified against ``datasets/manifests/movielens-1m-images.sha256``, as extraction does).
Each (runtime, batch size) runs in its own process, so that its peak RSS is its own, and reports:
``setup s`` (weights checked and loaded, network folded and exported), ``images/s`` end to end
(the shared loader's ``--workers`` threads decoding and preprocessing, plus the network, as
``python -m datasets features`` runs), ``net images/s`` (the network alone on preloaded pixels)
and the process's peak RSS. ``torch-folded-cl`` is the folded network in channels-last memory
layout. ``--threads`` sets torch's CPU threads (ONNX Runtime uses one per core). The machine
load (``uptime``) is printed with the numbers: timings on a shared machine vary.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks._common import peak_rss_mb  # noqa: E402

RUNTIMES = ("onnxruntime", "torch-folded", "torch-folded-cl", "torch")
POSTER_MANIFEST = ROOT / "datasets" / "manifests" / "movielens-1m-images.sha256"


def posters(mirror: Path, n: int):
    """The first ``n`` posters (by movie id) as ItemImages rooted at the mirror, with their sha256."""
    from datasets.item_data import ItemImages

    rows = [line.split("  ", 1) for line in POSTER_MANIFEST.read_text().splitlines()]
    rows = sorted(rows, key=lambda row: int(Path(row[1]).stem))[:n]
    return ItemImages(root=mirror / "movielens-1m-images", paths=tuple(row[1] for row in rows),
                      sha256=tuple(row[0] for row in rows))


def run_one(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from datasets.extraction import load_encoder
    from datasets.extractors import get_extractor
    from datasets.images import iter_batches

    torch.set_num_threads(args.threads)
    spec = get_extractor(args.extractor)
    images = posters(Path(os.environ["RECAUDIT_MIRROR"]), args.images)
    started = time.perf_counter()
    layout = args.one == "torch-folded-cl"
    encoder = load_encoder(spec, device="cpu", runtime="torch-folded" if layout else args.one, progress=False)
    if layout:
        network = encoder.network.folded().to(memory_format=torch.channels_last)

        def encode(pixels):
            with torch.inference_mode():
                return network(torch.from_numpy(pixels).contiguous(memory_format=torch.channels_last)).numpy()
    else:
        encode = encoder
    encode(np.zeros((args.batch_size, 3, spec.preprocessing.crop, spec.preprocessing.crop), dtype=np.float32))
    setup = time.perf_counter() - started
    started = time.perf_counter()
    batches = []
    for batch in iter_batches(images, spec.preprocessing, args.batch_size, args.workers):
        encode(batch.pixels)
        batches.append(batch.pixels)
    end_to_end = time.perf_counter() - started
    started = time.perf_counter()
    for pixels in batches:
        encode(pixels)
    network_only = time.perf_counter() - started
    return {"runtime": encoder.runtime + ("+channels_last" if layout else ""), "setup": setup,
            "images_per_s": args.images / end_to_end, "network_images_per_s": args.images / network_only,
            "peak_rss_mb": peak_rss_mb()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--extractor", default="efficientnet-lite0")
    parser.add_argument("--runtimes", nargs="*", choices=RUNTIMES, default=list(RUNTIMES))
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=[1, 8, 16, 32])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", choices=RUNTIMES, help=argparse.SUPPRESS)  # internal: one configuration
    parser.add_argument("--batch-size", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not os.environ.get("RECAUDIT_MIRROR"):
        print("RECAUDIT_MIRROR is not set; point it at the data mirror (../shared/data)", file=sys.stderr)
        return 2
    if args.one:
        print(json.dumps(run_one(args)))
        return 0
    print(f"{args.extractor} on {args.images} ML-1M posters, {args.workers} loader workers, "
          f"{args.threads} torch threads, {os.cpu_count()} CPUs")
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    rows = []
    for runtime in args.runtimes:
        for batch_size in args.batch_sizes:
            command = [sys.executable, __file__, "--one", runtime, "--batch-size", str(batch_size),
                       "--images", str(args.images), "--extractor", args.extractor,
                       "--workers", str(args.workers), "--threads", str(args.threads)]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                print(result.stderr, file=sys.stderr)
                return result.returncode
            rows.append((batch_size, json.loads(result.stdout.strip().splitlines()[-1])))
            row = rows[-1][1]
            print(f"  {row['runtime']} batch {batch_size}: {row['images_per_s']:.1f} images/s", flush=True)
    print("load after: ", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    header = f"{'runtime':30} {'batch':>5} {'setup s':>7} {'images/s':>8} {'net images/s':>12} {'peak RSS MB':>11}"
    print(header)
    print("-" * len(header))
    for batch_size, row in rows:
        print(f"{row['runtime']:30} {batch_size:5d} {row['setup']:7.1f} {row['images_per_s']:8.1f} "
              f"{row['network_images_per_s']:12.1f} {row['peak_rss_mb']:11.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
