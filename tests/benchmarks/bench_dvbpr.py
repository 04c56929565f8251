"""DVBPR training throughput (images per second) at each image size, on the CPU and on CUDA.

Not collected by pytest. Run from the repository root::

    python tests/benchmarks/bench_dvbpr.py [--sizes 32 64 128 224] [--steps 3] [--devices cpu cuda]

One training step is DVBPR's: a batch of 128 triples, so 256 images through CNN-F (the
released architecture: five convolutions, two 4096-unit layers, K = 100) forward and backward,
the summed BPR loss with both regularisers, and one Adam update. Pixels come from random
uint8 images already in memory (the model decodes every poster once per fit into such a
cache), so the table measures the network alone. The fastest of ``--steps`` timed steps (after
one warm-up) is reported per size and device; CUDA rows appear only where CUDA is available.
The CPU runs on ``DVBPR.training_threads`` threads, as a fit does.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def images_per_second(size: int, device_name: str, steps: int, batch: int = 128) -> tuple[float, float]:
    import numpy as np
    import torch

    from neural._dvbpr_network import DVBPRNetwork
    from neural.dvbpr import DVBPR

    device = torch.device(device_name)
    n_items, n_users = 512, 64
    pixels = torch.randint(0, 256, (n_items, 3, size, size), dtype=torch.uint8)
    network = DVBPRNetwork(n_users, n_items, pixels, np.ones(n_items), 100, 0)
    network.reset_parameters(torch.Generator().manual_seed(0))
    network = network.to(device)
    model = DVBPR(image_size=size)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)
    generator = torch.Generator(device=device).manual_seed(0)
    rng = np.random.default_rng(0)
    network.train()
    times = []
    for step in range(steps + 1):
        users = torch.from_numpy(rng.integers(0, n_users, batch)).to(device)
        positives = torch.from_numpy(rng.integers(0, n_items, batch)).to(device)
        negatives = torch.from_numpy(rng.integers(0, n_items, batch)).to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        loss = model._batch_loss(network, (users, positives, negatives), generator, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step:  # the first step pays one-time set-up
            times.append(time.perf_counter() - started)
    best = min(times)
    return 2 * batch / best, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 224])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    args = parser.parse_args(argv)
    import torch

    from common.threads import thread_scope
    from neural.dvbpr import DVBPR

    print(f"torch {torch.__version__}; CPU training threads: {DVBPR.training_threads}; "
          f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'not available'}")
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"{'device':<8} {'image size':>10} {'s/step (256 images)':>20} {'images/s':>10}")
    for device in args.devices:
        if device == "cuda" and not torch.cuda.is_available():
            continue
        for size in args.sizes:
            threads = DVBPR.training_threads if device == "cpu" else None
            with thread_scope(threads):
                rate, seconds = images_per_second(size, device, args.steps)
            print(f"{device:<8} {size:>10} {seconds:>20.3f} {rate:>10.0f}", flush=True)
    print("load after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
