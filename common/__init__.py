"""Helpers every RecAudit package uses: one-line user errors (``errors``), atomic writes
(``atomic``), the lazy command dispatcher (``cli``) and torch thread scopes (``threads``).
Imports nothing from the other packages, so every package may import it."""
