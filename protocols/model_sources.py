"""Per-model source manifests, so that DVC reruns only the stages of models whose code changed.

Why: a `tune` or `evaluate` stage that depended on the whole ``baselines/`` and ``neural/``
folders reran every model of the suite whenever any model file changed or a new one was
added. Instead each stage depends on ``model_sources/<model>.txt``: the sha256 of every
project source file the model's class can import, found by reading import statements
(:mod:`ast`, transitively, imports inside functions included). The ``model-sources`` stage
rewrites all manifests on any code change, but a manifest whose files did not change comes
out byte-identical, and DVC then leaves that model's stages alone.

The same stage writes one *inputs* manifest per (split, model label) of the suite,
``model_inputs/<dataset>/<split>/<label>.txt``: the sha256 of every extracted item feature set
(``data/features/<dataset>/<extractor>/``) that label can read on that split's dataset, so that
changing content, images or extractor weights reruns exactly the stages that read them
(a model that reads no item features has an empty manifest, which never changes). Feature
sets the split carries (genres, tags, ...) are hashed into its card instead.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
from pathlib import Path

from protocols.registry import registered_models

PROJECT_PACKAGES = ("common", "datasets", "protocols", "baselines", "neural", "reports")


def module_file(module: str) -> Path | None:
    """The file Python imports for a project module name; None for other packages and for
    names that are not modules (``from pkg.module import function``)."""
    if module.split(".")[0] not in PROJECT_PACKAGES:
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def display_path(module: str, path: Path) -> str:
    """``pkg/module.py`` or ``pkg/__init__.py``: the same on every checkout."""
    stem = "/".join(module.split("."))
    return f"{stem}/__init__.py" if path.name == "__init__.py" else f"{stem}.py"


def imported_modules(module: str, path: Path) -> set[str]:
    """Project modules named by the import statements of one file, their parent packages included."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join(part for part in [*anchor, base] if part)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return {name for name in _with_parents(names) if module_file(name) is not None}


def _with_parents(names) -> set[str]:
    return {".".join(name.split(".")[:end]) for name in names for end in range(1, len(name.split(".")) + 1)}


def source_closure(module: str) -> dict[str, Path]:
    """Every project module reachable from ``module`` through imports: name -> file."""
    seen: dict[str, Path] = {}
    pending = sorted(_with_parents([module]))
    while pending:
        name = pending.pop()
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen[name] = path
        pending.extend(sorted(imported_modules(name, path) - seen.keys()))
    return seen


def manifest(model: str, cls: type) -> str:
    """The text of ``model_sources/<model>.txt``: one ``sha256  path`` line per source file."""
    lines = [f"# sources of model {model} ({cls.__module__}.{cls.__qualname__}); "
             "written by `python -m protocols model-sources`"]
    files = {display_path(name, path): path for name, path in source_closure(cls.__module__).items()}
    for shown, path in sorted(files.items()):
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {shown}")
    return "\n".join(lines) + "\n"


def manifests(params: dict | None = None) -> dict[str, str]:
    """Manifest text of every registered model and every ``models:`` label, keyed by name."""
    from protocols.runner import model_entry

    texts = {name: manifest(name, cls) for name, cls in registered_models().items()}
    for label in (params or {}).get("models") or {}:
        entry = model_entry(params, label)
        if label not in texts:
            texts[label] = manifest(label, registered_models()[entry.model])
    return texts


def input_manifests(params: dict, features_root: Path) -> dict[str, str]:
    """``<dataset>/<split>/<label>`` -> the text of its inputs manifest (see the module docstring),
    for every split and model label of the suite."""
    from datasets.item_data import read_feature_set_meta
    from protocols.contract import ANY_FEATURES
    from protocols.registry import make_model
    from protocols.runner import model_entry

    suite = params.get("suite") or {}
    texts = {}
    for split_key in suite.get("splits") or []:
        dataset = ((params.get("splits") or {}).get(split_key) or {}).get("dataset", split_key.split("/")[0])
        folder = Path(features_root) / dataset
        available = {}
        if folder.is_dir():
            for child in sorted(p for p in folder.iterdir() if (p / "meta.json").is_file() and not p.name.startswith(".")):
                meta = read_feature_set_meta(child)
                available[meta["key"]] = meta["sha256"]
        for label in suite.get("models") or []:
            entry = model_entry(params, label)
            model = make_model(entry.model, entry.fixed)
            wanted = model.requirements().item_features
            searched = "features" in type(model).search_space and "features" not in entry.fixed
            read = {key: digest for key, digest in available.items()
                    if searched or wanted == ANY_FEATURES or (wanted is not None and key.split("@")[0] == wanted)}
            lines = [f"# item features that {label} can read on {split_key}; written by "
                     "`python -m protocols model-sources`"]
            lines += [f"{digest}  {key}" for key, digest in sorted(read.items())]
            texts[f"{split_key}/{label}"] = "\n".join(lines) + "\n"
    return texts
