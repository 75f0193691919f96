"""Data files that cannot be read are one line naming the file (and the fix), before any model is evaluated.

Before issue 13, binary, UTF-16 and corrupt Parquet files ended in a Python traceback (UnicodeDecodeError,
pyarrow's ArrowInvalid).
"""

from __future__ import annotations

import json
import os

import pytest

from evalkit.data.tasks import load_task
from evalkit.errors import TaskError
from bad_input_helpers import run_cli, tiny_models  # noqa: F401 (fixtures)

ROW = {"question": "is the sky blue", "passage": "The sky is blue.", "answer": True}
ROWS = "".join(json.dumps({**ROW, "question": f"is the sky blue {i}"}) + "\n" for i in range(3))


def _parquet(path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"text": "x"}] * 2), path)


CASES = [  # (file name, content, words of the one line)
    ("binary.jsonl", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), ["binary.jsonl", "not UTF-8 text"]),
    ("utf16.jsonl", ROWS.encode("utf-16"), ["utf16.jsonl", "UTF-16", "re-save it as UTF-8"]),
    ("utf16.json", json.dumps([ROW]).encode("utf-16-le"), ["utf16.json", "UTF-16"]),
    ("garbage.parquet", os.urandom(1024), ["garbage.parquet", "not a readable Parquet file"]),
    ("empty.parquet", b"", ["empty.parquet", "not a readable Parquet file"]),
    ("rows.parquet", ROWS.encode(), ["rows.parquet", "not a readable Parquet file"]),
    ("columns.parquet", _parquet, ["columns.parquet", "row 0: field", "is missing"]),
    ("deep.jsonl", ("[" * 100_000 + "]" * 100_000 + "\n").encode(), ["deep.jsonl"]),
    ("null.jsonl", b"null\n", ["row 0 is a NoneType"]),
    ("empty.jsonl", b"", ["empty.jsonl holds no rows"]),
]


@pytest.mark.parametrize(("name", "content", "words"), CASES, ids=[c[0] for c in CASES])
def test_an_unreadable_data_file_is_one_task_error(name, content, words, tmp_path):
    path = tmp_path / name
    content(path) if callable(content) else path.write_bytes(content)
    with pytest.raises(TaskError) as err:
        load_task("boolq", path)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_a_utf8_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + ROWS.encode())
    assert len(load_task("boolq", path).items) == 3


@pytest.mark.parametrize("name", ["binary.jsonl", "garbage.parquet"])
def test_the_command_line_says_it_in_one_line_before_any_model(name, tiny_models, tmp_path, run_cli):
    path = tmp_path / name
    path.write_bytes(dict((c[0], c[1]) for c in CASES)[name])
    ran = run_cli("eval", tiny_models["parent"], "--task", "boolq", "--data", path, "--cache", tmp_path / "cache",
                  "--out", tmp_path / "run", "-q", "--device", "cpu")
    assert ran.rc == 2 and ran.line.startswith(f"evalkit eval: error: boolq: {path}: ")
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def _many_rows(line: bytes, rows: int = 100_001) -> bytes:
    return line * rows


LARGE = [  # files over a megabyte and `sampling.LARGE_SOURCE` rows take the row-index path (issue 12) with --limit
    ("big-garbage.parquet", os.urandom(1 << 20) + b"tail", ["big-garbage.parquet", "not a readable Parquet file"]),
    ("big-binary.jsonl", _many_rows(b"\x89\x80garbage\n"), ["big-binary.jsonl", "not UTF-8 text"]),
    ("big-utf16.jsonl", _many_rows(json.dumps(ROW).encode() + b"\n").decode().encode("utf-16"),
     ["big-utf16.jsonl", "UTF-16"]),
]


@pytest.mark.parametrize(("name", "content", "words"), LARGE, ids=[c[0] for c in LARGE])
def test_a_large_unreadable_file_is_one_task_error_too(name, content, words, tmp_path):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TaskError) as err:
        load_task("boolq", path, limit=3)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message
