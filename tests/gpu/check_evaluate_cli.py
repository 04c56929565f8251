"""GPU check of the command-line path: a synthetic split evaluated by `python -m protocols evaluate`
with neural models on ``device: auto`` (which must pick CUDA), next to the same run forced to the CPU.

Not collected by pytest. Run from the repository root on a machine with CUDA::

    python tests/gpu/check_evaluate_cli.py

Exits 1 if a check fails, 2 if CUDA is missing. Needs this repository, torch, numpy, scipy,
pandas, pyarrow and pyyaml (no Optuna, no DVC).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MODELS = {"multvae": {"epochs": 20, "batch_size": 200}, "neumf": {"epochs": 4, "factors": 16},
          "bprmf": {"epochs": 10, "factors": 32}}


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("CUDA is not available")
        return 2
    from datasets.synthetic import make_synthetic
    from protocols.split_data import write_split
    from protocols.splits import make_split

    work = Path(tempfile.mkdtemp())
    data = make_synthetic(1500, 800, 0.03, seed=3)
    write_split(make_split(data, "holdout", 3, {"test_fraction": 0.2, "validation_fraction": 0.1}),
                work / "splits" / "synthetic" / "holdout")
    (work / "params.yaml").write_text("seed: 3\nevaluation:\n  seeds: 1\n  cutoffs: [10]\n  metrics: [ndcg, recall]\n")
    failures, rows = [], []
    for model, params in MODELS.items():
        scores = {}
        for device in ("auto", "cpu"):
            params_file = work / f"{model}-{device}.yaml"
            params_file.write_text(json.dumps({**params, "device": device}))
            results = work / f"results-{device}"
            command = [sys.executable, "-m", "protocols", "evaluate", "--split", "synthetic/holdout", "--model", model,
                       "--params", str(params_file), "--params-yaml", str(work / "params.yaml"),
                       "--splits-root", str(work / "splits"), "--results-root", str(results)]
            run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            if run.returncode != 0:
                failures.append(f"{model} on {device}: exit {run.returncode}: {run.stderr.strip()[-300:]}")
                continue
            record = json.loads((results / "synthetic" / "holdout" / model / "metrics.json").read_text())
            scores[device] = (record["metrics"]["ndcg@10"], record["fit_seconds"])
        if len(scores) == 2:
            (gpu, gpu_s), (cpu, cpu_s) = scores["auto"], scores["cpu"]
            rows.append(f"{model:8s} ndcg@10 auto(cuda) {gpu:.4f} cpu {cpu:.4f}   fit s cuda {gpu_s:.2f} cpu {cpu_s:.2f}")
            if abs(gpu - cpu) > 0.05:
                failures.append(f"{model}: GPU ndcg@10 {gpu:.4f} differs from CPU {cpu:.4f} by more than 0.05")
    print("\n".join(rows))
    print("\n".join(failures) or "all CLI checks passed on " + torch.cuda.get_device_name(0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
