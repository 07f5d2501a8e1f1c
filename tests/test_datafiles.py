"""Reading datasets: ids kept as written, bad lines as error items, bad datasets refused with line numbers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "template" / "src"))

from bench_harness._core.datafiles import DataError, check_items, read_records, write_records  # noqa: E402


def test_csv_ids_with_leading_zeros_stay_distinct(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('input_id,x,score,tags\n001,1,0.5,"[1, 2]"\n01,2,1e3,\n1,3,nan,{}\n')
    records = read_records(path)
    assert [r["input_id"] for r in records] == ["001", "01", 1]
    assert [r["score"] for r in records] == [0.5, 1000.0, "nan"]
    assert records[0]["tags"] == [1, 2] and records[1]["tags"] is None and records[2]["tags"] == {}


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_every_format_round_trips(tmp_path: Path, fmt: str) -> None:
    """One type per column (Parquet's rule); CSV has no types, so its "7" is read back as 7."""
    records = [
        {"input_id": "001", "text": 'café, "quoted"', "label": 1, "features": [0.5, 1.5]},
        {"input_id": 7 if fmt == "csv" else "7", "text": "second", "label": 0, "features": [2.0]},
    ]
    path = tmp_path / f"d.{fmt}"
    write_records(path, records)
    assert read_records(path) == records


def test_bad_jsonl_lines_become_malformed_items_with_their_line_number(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(
        b'{"input_id": 1}\n\n[1, 2]\n{"input_id": 2, "t": "\xff\xfe"}\nnot json\n"text"\n{"input_id": 3}\n'
    )
    records = read_records(path)
    assert [r["input_id"] for r in records] == [1, "line-3", "line-4", "line-5", "line-6", 3]
    assert "not an object" in records[1]["_malformed"] and "line 3" in records[1]["_malformed"]
    assert "not UTF-8" in records[2]["_malformed"]
    assert "line 5" in records[3]["_malformed"]


def test_unreadable_data_is_a_one_line_message_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_records(tmp_path / "missing.jsonl")
    path = tmp_path / "d.csv"
    path.write_bytes(b"input_id,text\n1,\xff\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_records(path)


def test_empty_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no items"):
        check_items([], tmp_path / "d.jsonl")


def test_missing_and_repeated_ids_are_refused_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [{"input_id": 1}, {"input_id": 2}, {"text": "no id"}, {"input_id": 2}, {"input_id": 3}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as refused:
        check_items(read_records(path), path)
    message = str(refused.value)
    assert "1 item(s) without an input_id: lines 3" in message
    assert "input_id '2' appears 2 times (lines 2, 4)" in message


def test_unique_ids_pass(tmp_path: Path) -> None:
    check_items([{"input_id": 1}, {"input_id": "1a"}], None)
