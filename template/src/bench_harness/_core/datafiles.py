"""Read and write datasets as lists of dicts, whatever the format (jsonl, csv, parquet).

Template-owned. data.py (yours) decides *which* items to benchmark; this module only knows file
formats, so switching data_format is an answer change, not a code change.
"""

from __future__ import annotations

import csv
import json
import math
from array import array
from collections.abc import Callable, Iterable
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any

from .._core.config import load_config

FORMATS = ("jsonl", "csv", "parquet")


def format_of(path: Path) -> str:
    suffix = path.suffix.lstrip(".").lower()
    if suffix not in FORMATS:
        raise ValueError(f"unsupported data format {suffix!r} for {path}: use one of {', '.join(FORMATS)}")
    return suffix


class DataError(Exception):
    """The data cannot be benchmarked as it is: the message names the file, the lines and the fix."""


def _csv_value(text: str) -> Any:
    """CSV has no types: numbers whose text round-trips become numbers, empty cells None, JSON cells JSON.

    "001", "01" and "1" are three ids: only "1" reads back as the int 1. Lists and objects written
    by `write_records` come back from their JSON text.
    """
    if text == "":
        return None
    if text[0] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return text
    try:
        number = int(text)
        return number if str(number) == text else text
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _jsonl_record(number: int, raw: bytes) -> dict[str, Any] | None:
    """One line as a record; a line that is not UTF-8, not JSON or not an object becomes a malformed item.

    A malformed item is recorded as an error row of its own (the harness never calls predict on it),
    so one bad line costs one row, not the run.
    """
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return {"input_id": f"line-{number}", "_malformed": f"line {number} is not UTF-8 ({error.reason})"}
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return {"input_id": f"line-{number}", "_malformed": f"line {number}: {error}: {line[:200]}"}
    if not isinstance(record, dict):
        kind = type(record).__name__
        return {"input_id": f"line-{number}", "_malformed": f"line {number} is a JSON {kind}, not an object"}
    return record


def convertible_source(path: Path) -> Path | None:
    """The same data in another format beside a missing `path`: the file to convert after `data_format`
    changed (an update, or the bundled data/sample.jsonl before `bench prepare-data` converted it)."""
    others = [path.with_suffix(f".{kind}") for kind in FORMATS if f".{kind}" != path.suffix.lower()]
    return next((c for c in [*others, path.parent / "sample.jsonl"] if c.is_file() and c != path), None)


def missing_data(path: Path) -> DataError:
    """Why the data file is missing, with the exact command when another format of it is there."""
    source = convertible_source(path)
    if source is None:
        return DataError(f"{path} does not exist: put your data there, or point data_path at it")
    return DataError(
        f"{path} does not exist, but {source.name} does (data_format changed, e.g. by `copier update`): "
        f"convert it with `uv run bench prepare-data`"
    )


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of the file, in file order (jsonl, csv, or parquet read by DuckDB: no pyarrow)."""
    kind = format_of(path)
    if not path.exists():
        raise missing_data(path)
    try:
        if kind == "jsonl":
            with path.open("rb") as f:
                return [r for number, raw in enumerate(f, 1) if (r := _jsonl_record(number, raw)) is not None]
        if kind == "csv":
            with path.open(encoding="utf-8", newline="") as f:
                return [{k: _csv_value(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except FileNotFoundError:
        raise missing_data(path) from None
    except PermissionError:
        raise DataError(f"{path} cannot be read (permission denied): chmod u+r {path}") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 ({error.reason} at byte {error.start}): re-save it as UTF-8") from None
    return _read_parquet(path)


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import duckdb

    con = duckdb.connect()
    try:
        result = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
        names = [d[0] for d in result.description]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    except duckdb.IOException as error:
        raise DataError(f"{path} cannot be read as Parquet: {error}") from None
    finally:
        con.close()


def record_lines(path: Path) -> list[int]:
    """The line (jsonl), row (csv: header is line 1) or row number (parquet) of each record, in order."""
    kind = format_of(path)
    if kind == "jsonl":
        with path.open("rb") as f:
            return [number for number, raw in enumerate(f, 1) if raw.strip()]
    offset = 2 if kind == "csv" else 1
    return [index + offset for index in range(len(read_records(path)))]


def check_items(
    items: Iterable[dict[str, Any]],
    data_path: Path | None = None,
    again: Callable[[], Iterable[dict[str, Any]]] | None = None,
) -> int:
    """Refuse a dataset that cannot be benchmarked: empty, or input_ids missing or repeated; return its size.

    Streams: load_items() may yield a million items, so only one 64-bit hash per id is kept (8 bytes,
    in an array) and sorted once to find repeats. A repeated hash is confirmed on the real ids in a
    second pass over `again()` (a fresh iterable of the same items; `items` itself when it is a list),
    which runs only when there is a repeat (or a one-in-2**64 hash collision). A one-shot iterator
    without `again` is listed first. Line numbers are those of the configured data file when its
    records carry the offending ids.
    """
    if again is None and iter(items) is items:
        items = list(items)
    where = f" ({data_path})" if data_path else ""
    hashes = array("q")
    missing: list[int] = []
    count = 0
    iterator = iter(items)
    while block := [item.get("input_id") for item in islice(iterator, 10_000)]:  # C loops over a block
        present = block
        if None in block or "" in block:
            missing += [count + index for index, input_id in enumerate(block) if input_id in (None, "")]
            present = [input_id for input_id in block if input_id not in (None, "")]
        hashes.extend(map(hash, map(str, present)))
        count += len(block)
    if not count:
        raise DataError(f"load_items() returned no items{where}: nothing to benchmark")
    candidates = _repeated_hashes(hashes)
    del hashes
    repeated = _repeated_ids(again() if again is not None else items, candidates) if candidates else {}
    if not (missing or repeated):
        return count
    lines = _lines_by_id(data_path)
    problems = []
    if missing:
        problems.append(f"{len(missing)} item(s) without an input_id: {_places(missing, lines)}")
    for key, indexes in list(repeated.items())[:10]:
        at = lines.get(key)
        problems.append(f"input_id {key!r} appears {len(indexes)} times" + (f" (lines {_short(at)})" if at else ""))
    if len(repeated) > 10:
        problems.append(f"... and {len(repeated) - 10} more repeated input_ids")
    raise DataError(
        f"the data{where} cannot be benchmarked: every item needs a unique, stable input_id.\n  "
        + "\n  ".join(problems)
    )


def _repeated_hashes(hashes: array) -> set[int]:
    """The hashes that occur more than once (numpy sorts 8 bytes an id; a set of ids would cost ~90)."""
    import numpy as np

    if len(hashes) < 2:
        return set()
    ordered = np.sort(np.frombuffer(hashes, dtype=np.int64))
    return set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())


def _repeated_ids(items: Iterable[dict[str, Any]], candidates: set[int]) -> dict[str, list[int]]:
    """input_id -> its item indexes, for the ids seen more than once among those whose hash is a candidate."""
    seen: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        input_id = item.get("input_id")
        if input_id in (None, ""):
            continue
        key = str(input_id)
        if hash(key) in candidates:
            seen.setdefault(key, []).append(index)
    return {key: indexes for key, indexes in seen.items() if len(indexes) > 1}


def _lines_by_id(data_path: Path | None) -> dict[str, list[int]]:
    """input_id (as text) -> the lines of the data file holding it; {} when the file cannot tell."""
    if data_path is None or not data_path.exists():
        return {}
    try:
        records, lines = read_records(data_path), record_lines(data_path)
    except (DataError, ValueError):
        return {}
    found: dict[str, list[int]] = {}
    for record, line in zip(records, lines, strict=False):
        found.setdefault(str(record.get("input_id")), []).append(line)
    return found


def _places(indexes: list[int], lines: dict[str, list[int]]) -> str:
    missing_lines = lines.get("None", []) + lines.get("", [])
    if missing_lines:
        return "lines " + _short(missing_lines)
    return "items " + _short([index + 1 for index in indexes]) + " of load_items()"


def _short(numbers: list[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, numbers[:limit]))
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def dataset() -> tuple[dict[str, Any], ...]:
    """The records of the configured data file (benchmark.toml's data path), read once per process.

    data.py filters them more than once per run (the items, a training split, a corpus): one read
    serves them all. Treat the records as read-only; copy one before changing it.
    """
    return _cached_records(load_config().data_path)


@lru_cache(maxsize=8)
def _cached_records(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(read_records(path))


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    """Write records as jsonl, csv (lists and objects as JSON text) or parquet (through DuckDB)."""
    kind = format_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":
        with path.open("w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    elif kind == "csv":
        names = list(dict.fromkeys(k for r in records for k in r))
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=names)
            writer.writeheader()
            writer.writerows({k: _csv_cell(v) for k, v in r.items()} for r in records)
    else:
        _write_parquet(path, records)


def _csv_cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else value


def _write_parquet(path: Path, records: list[dict[str, Any]]) -> None:
    """Parquet through DuckDB (already a dependency): the records go through a temporary jsonl file."""
    import tempfile

    import duckdb

    with tempfile.TemporaryDirectory() as folder:
        staging = Path(folder) / "records.jsonl"
        write_records(staging, records)
        con = duckdb.connect()
        try:
            target = "'" + str(path).replace("'", "''") + "'"
            con.execute(f"COPY (SELECT * FROM read_json_auto(?)) TO {target} (FORMAT PARQUET)", [str(staging)])
        finally:
            con.close()


def convert(source: Path, target: Path) -> None:
    """Write `source`'s records to `target` in target's format (used once, after copy)."""
    write_records(target, read_records(source))
