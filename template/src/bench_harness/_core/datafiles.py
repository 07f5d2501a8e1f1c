"""Read and write datasets as lists of dicts, whatever the format (jsonl, csv, parquet).

Template-owned. data.py (yours) decides *which* items to benchmark; this module only knows file
formats, so switching data_format is an answer change, not a code change.
"""

from __future__ import annotations

import csv
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from .._core.config import load_config

FORMATS = ("jsonl", "csv", "parquet")


def format_of(path: Path) -> str:
    suffix = path.suffix.lstrip(".").lower()
    if suffix not in FORMATS:
        raise ValueError(f"unsupported data format {suffix!r} for {path}: use one of {', '.join(FORMATS)}")
    return suffix


def _csv_value(text: str) -> Any:
    """CSV has no types: read numbers back as numbers, empty cells as None."""
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of the file; a malformed JSON line becomes an item that predict() will reject."""
    kind = format_of(path)
    if kind == "jsonl":
        records = []
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    records.append({"input_id": f"line-{number}", "_malformed": f"{error}: {line[:200]}"})
        return records
    if kind == "csv":
        with path.open(encoding="utf-8", newline="") as f:
            return [{k: _csv_value(v) for k, v in row.items()} for row in csv.DictReader(f)]
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


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
    kind = format_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":
        with path.open("w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")
    elif kind == "csv":
        names = list(dict.fromkeys(k for r in records for k in r))
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=names)
            writer.writeheader()
            writer.writerows(records)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), path)


def convert(source: Path, target: Path) -> None:
    """Write `source`'s records to `target` in target's format (used once, after copy)."""
    write_records(target, read_records(source))
