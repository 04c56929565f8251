"""Strict, fast readers for the raw file formats of the audited datasets.

Fixed-column files are read with pyarrow's CSV reader (typed, strict about the number of
fields); variable-length ``head value value ...`` lines are split once and converted with
numpy. Only when the fast path fails do we walk the file line by line, to name the first
malformed line (1-based, header included) in the :class:`RecAuditError`.

Values that decode but cannot be right are refused too: a fixed-column file whose last line
lacks its newline (a file cut off mid-field still parses), a negative ``user`` or ``item`` id,
and a value outside the range a parser declares (the rating scale the registry knows for the
dataset, :func:`rating_ranges`).
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from common.errors import RecAuditError

ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
ID_COLUMNS = ("user", "item")  # integer ids in these columns must be >= 0
PYTHON_CONVERTERS = {"int": int, "float": float, "str": str}


def require_file(raw_dir: Path, name: str, dataset: str) -> Path:
    """The path of a raw file the parser cannot do without; a clear error when it is absent."""
    path = Path(raw_dir) / name
    if not path.is_file():
        raise RecAuditError(
            f"{dataset}: raw file {name} is missing from {raw_dir}; "
            f"fetch it (python -m datasets fetch {dataset}) or copy the original file there"
        )
    return path


def require_folder(raw_dir: Path, name: str, dataset: str) -> Path:
    path = Path(raw_dir) / name
    if not path.is_dir():
        raise RecAuditError(
            f"{dataset}: raw folder {name}/ is missing from {raw_dir}; "
            f"fetch it (python -m datasets fetch {dataset}) or copy the original folder there"
        )
    return path


def malformed(path: Path, line_number: int, expected: str, line: str | bytes) -> RecAuditError:
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    shown = line if len(line) <= 80 else line[:77] + "..."
    return RecAuditError(
        f"{path}: malformed line {line_number}: expected {expected}, got {shown!r}; "
        "the file is corrupt or not the expected one, fetch it again"
    )


# ----- fixed-column tables ----------------------------------------------------------


def read_table(
    path: Path,
    columns: dict[str, str],
    *,
    sep: str = "\t",
    header: str | None = None,
    encoding: str = "utf-8",
    quoted: bool = False,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Read a delimited file whose every line has exactly ``columns`` (name -> int/float/str).

    ``header`` is the exact expected first line (checked), or None when the file has none.
    ``sep`` may be several characters (MovieLens 1M's ``::``). Blank lines are skipped. The
    last line must end with a newline (else the file was cut off); integer ``user``/``item``
    ids must be >= 0 and each column of ``ranges`` within its ``(lowest, highest)``.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw.strip() and not raw.endswith(b"\n"):
        lines = raw.split(b"\n")
        raise malformed(path, len(lines), "a last line that ends with a newline: the file looks truncated",
                        lines[-1])
    if encoding.lower().replace("_", "-") not in ("utf-8", "ascii"):
        raw = raw.decode(encoding).encode("utf-8")
    if header is not None:
        first_line = raw.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
        if first_line.lstrip("\ufeff") != header:
            raise malformed(path, 1, f"the header {header!r}", first_line)
    delimiter = sep
    if len(sep) > 1:
        raw = raw.replace(sep.encode(), b"\t")
        delimiter = "\t"
    expected = f"{len(columns)} fields separated by {sep!r} ({', '.join(f'{n}: {k}' for n, k in columns.items())})"
    try:
        table = pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(column_names=list(columns), skip_rows=0 if header is None else 1),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: ARROW_TYPES[kind] for name, kind in columns.items()},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        _raise_first_bad_line(path, columns, sep, header is not None, encoding, quoted, expected)
        raise RecAuditError(f"{path}: cannot be read as {expected}: {error}") from error
    if any(table.column(name).null_count for name in columns):
        _raise_first_bad_line(path, columns, sep, header is not None, encoding, quoted, expected)
        raise RecAuditError(f"{path}: empty values where {expected}")
    frame = table.to_pandas()
    limits = {name: (0, np.inf) for name in ID_COLUMNS if columns.get(name) == "int"} | dict(ranges or {})
    for name, (lowest, highest) in limits.items():
        values = frame[name].to_numpy()
        if len(values) and (values.min() < lowest or values.max() > highest):
            expected_range = f"a non-negative {name} id" if name not in (ranges or {}) \
                else f"a {name} in {lowest:g}..{highest:g} (the dataset's scale)"
            _raise_first_line_outside(path, list(columns).index(name), lowest, highest, sep, header is not None,
                                      encoding, quoted, expected_range)
    return frame


def _raise_first_line_outside(path, position, lowest, highest, sep, has_header, encoding, quoted, expected) -> None:
    """Walk the file (error path only) and raise for the first line whose field ``position``
    lies outside ``lowest..highest``."""
    text = Path(path).read_bytes().decode(encoding, errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if (has_header and number == 1) or not line.strip():
            continue
        fields = next(csv.reader([line], delimiter=sep)) if quoted else line.split(sep)
        if not lowest <= float(fields[position]) <= highest:
            raise malformed(path, number, expected, line)
    raise RecAuditError(f"{path}: expected {expected} on every line; the file is corrupt or not the expected one, "
                        "fetch it again")


def rating_ranges(dataset: str) -> dict[str, tuple[float, float]]:
    """``{"rating": (lowest, highest)}`` when the registry declares the dataset's rating scale."""
    from datasets.registry import registered_datasets

    spec = registered_datasets().get(dataset)
    scale = None if spec is None else spec.rating_scale
    return {} if scale is None else {"rating": (float(scale[0]), float(scale[1]))}


def _raise_first_bad_line(path, columns, sep, has_header, encoding, quoted, expected) -> None:
    """Walk the file (error path only) and raise for the first line the fast reader refused."""
    text = Path(path).read_bytes().decode(encoding, errors="replace")
    kinds = list(columns.values())
    for number, line in enumerate(text.splitlines(), start=1):
        if (has_header and number == 1) or not line.strip():
            continue
        fields = next(csv.reader([line], delimiter=sep)) if quoted else line.split(sep)
        if len(fields) != len(kinds):
            raise malformed(path, number, expected, line)
        for value, kind in zip(fields, kinds):
            if kind == "str":
                continue
            try:
                PYTHON_CONVERTERS[kind](value)
            except ValueError:
                raise malformed(path, number, expected, line) from None


# ----- variable-length lines ----------------------------------------------------------


LINE_END = b"\x00"


def tokenize_lines(raw: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """Every whitespace-separated token of ``raw`` with its 0-based line, from one ``split``:
    line ends first become a marker token, whose running count numbers the lines."""
    if raw and not raw.endswith(b"\n"):
        raw += b"\n"
    tokens = np.array(raw.replace(b"\n", b" " + LINE_END + b" ").split(), dtype=bytes)
    if tokens.size == 0:
        return np.zeros(0, dtype="S1"), np.zeros(0, dtype=np.int64), 0
    is_end = tokens == LINE_END
    line_of = np.cumsum(is_end) - is_end
    return tokens[~is_end], line_of[~is_end], int(is_end.sum())


def line_text(path: Path, number: int) -> bytes:
    """Line ``number`` (1-based) of a file, for error messages only."""
    lines = Path(path).read_bytes().split(b"\n")
    return lines[number - 1].rstrip(b"\r") if number <= len(lines) else b""


def first_line_of(mask: np.ndarray, lines: np.ndarray) -> int:
    """1-based line of the first token where ``mask`` is False."""
    return int(lines[np.argmin(mask)]) + 1


@dataclass(frozen=True)
class Lists:
    """Variable-length integer lines: ``heads[r]`` is the first number of non-blank line
    ``r``, ``values`` the rest of every line concatenated, ``lengths[r]`` how many values line
    ``r`` has, ``line_numbers[r]`` its 1-based number in the file."""

    heads: np.ndarray
    values: np.ndarray
    lengths: np.ndarray
    line_numbers: np.ndarray

    def repeat_heads(self) -> np.ndarray:
        return np.repeat(self.heads, self.lengths)


def read_int_lists(path: Path, expected: str, *, allow_blank_lines: bool = True, pairs_sep: bytes | None = None) -> Lists:
    """Read lines of whitespace-separated non-negative integers, ``head value value ...``.

    ``pairs_sep`` (e.g. ``b":"``) turns ``word:count`` tokens into two values each.
    A blank line is an error when ``allow_blank_lines`` is False (formats where the line
    number is an id).
    """
    path = Path(path)
    raw = path.read_bytes()
    if pairs_sep is not None:
        raw = raw.replace(pairs_sep, b" ")
    tokens, lines, n_lines = tokenize_lines(raw)
    counts = np.bincount(lines, minlength=n_lines)
    if not allow_blank_lines and (counts == 0).any():
        number = int(np.argmin(counts)) + 1
        raise malformed(path, number, expected, line_text(path, number))
    digits = np.char.isdigit(tokens)
    if not digits.all():
        number = first_line_of(digits, lines)
        raise malformed(path, number, expected, line_text(path, number))
    try:
        numbers = tokens.astype(np.int64)
    except (ValueError, OverflowError) as error:
        raise RecAuditError(f"{path}: cannot be read as {expected}: {error}") from None
    first = np.ones(len(lines), dtype=bool)
    first[1:] = lines[1:] != lines[:-1]
    head_lines = lines[first]
    return Lists(heads=numbers[first], values=numbers[~first], lengths=counts[head_lines] - 1,
                 line_numbers=head_lines + 1)


def check_counts(path: Path, lists: Lists, expected: str, per_value: int = 1) -> None:
    """For ``count value value ...`` formats: the leading count must match the values."""
    bad = np.flatnonzero(lists.heads * per_value != lists.lengths)
    if len(bad):
        number = int(lists.line_numbers[bad[0]])
        raise malformed(path, number, f"{expected} (the leading count must equal the number of entries)",
                        line_text(path, number))


def read_user_lists(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``user item item ...`` per line -> (users, items), one entry per interaction."""
    lists = read_int_lists(path, "`user item item ...` (non-negative integers)")
    return lists.repeat_heads(), lists.values


def read_count_lists(path: Path, what: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``count id id ...`` where the 0-based line number is the owner's id (CiteULike).

    Returns (owners, ids, number_of_lines)."""
    expected = f"`count {what} {what} ...` (non-negative integers)"
    lists = read_int_lists(path, expected, allow_blank_lines=False)
    check_counts(path, lists, expected)
    owners = np.repeat(lists.line_numbers - 1, lists.lengths)
    return owners, lists.values, len(lists.line_numbers)


# ----- checksums ----------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_folder(folder: Path) -> tuple[str, int]:
    """One digest for a folder of files (e.g. posters): sha256 over sorted ``name sha256`` lines."""
    manifest = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        manifest.append(f"{path.relative_to(folder).as_posix()} {sha256_file(path)}\n")
    return hashlib.sha256("".join(manifest).encode()).hexdigest(), len(manifest)
