"""Hyperparameter search spaces, declared by each model class next to its code."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Dimension(Protocol):
    def suggest(self, trial: Any, name: str) -> Any: ...


@dataclass(frozen=True)
class Integer:
    low: int
    high: int
    log: bool = False

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log)

    def __str__(self) -> str:
        return f"int[{self.low}, {self.high}]{' log' if self.log else ''}"


@dataclass(frozen=True)
class Real:
    low: float
    high: float
    log: bool = False

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def __str__(self) -> str:
        return f"float[{self.low:g}, {self.high:g}]{' log' if self.log else ''}"


@dataclass(frozen=True)
class Categorical:
    choices: tuple

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))

    def __str__(self) -> str:
        return "{" + ", ".join(map(str, self.choices)) + "}"
