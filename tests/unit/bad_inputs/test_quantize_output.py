"""``evalkit quantize`` never destroys what it did not make.

Before issue 13, ``quantize MODEL --recipe R --out DIR`` ran ``shutil.rmtree`` on whatever DIR was: an unrelated
folder was deleted whole, ``--out`` equal to the source replaced the source with its quantized copy, and ``--out .``
emptied the working directory (``.git`` too) before ending in a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from evalkit.errors import QuantizationError
from evalkit.models.quantization import atomic_folder
from bad_input_helpers import run_cli, tiny_models  # noqa: F401 (fixtures)


def _tree(root: Path) -> list[tuple[str, bytes]]:
    return sorted((p.relative_to(root).as_posix(), p.read_bytes() if p.is_file() else b"") for p in root.rglob("*"))


def _user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("years of work")
    (path / ".git").mkdir()
    (path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return path


@pytest.fixture
def source(tiny_models, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_models["parent"], tmp_path / "src"))


CASES = [  # (what, --out relative to tmp_path (None: the working directory), words of the one line)
    ("an unrelated folder", "home", ["not made by evalkit", "never replaced"]),
    ("the source itself", "src", ["the model being quantized"]),
    ("an ancestor of the source", ".", ["holds the model being quantized"]),
    ("a folder inside the source", "src/q", ["inside the model being quantized"]),
    ("the working directory", None, ["working directory"]),
    ("a file", "file.txt", ["is a file"]),
]


@pytest.mark.parametrize(("what", "out", "words"), CASES, ids=[c[0] for c in CASES])
def test_quantize_refuses_an_out_it_could_destroy(what, out, words, source, tmp_path, monkeypatch, run_cli):
    work = _user_folder(tmp_path / "work")
    _user_folder(tmp_path / "home")
    (tmp_path / "file.txt").write_text("mine")
    monkeypatch.chdir(work)
    before = _tree(tmp_path)
    ran = run_cli("quantize", source, "--recipe", "rtn-w4g128", "--out", "." if out is None else tmp_path / out, "-q")
    assert ran.rc == 2 and all(w in ran.line for w in words), (what, ran.line)
    assert _tree(tmp_path) == before  # not a byte changed, .git included


def test_an_ancestor_of_the_working_directory_is_refused(source, tmp_path, monkeypatch):
    from evalkit.models.quantization import check_output

    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    with pytest.raises(QuantizationError, match="working directory or one of its ancestors"):
        check_output(tmp_path / "a", sources=[source])


def test_a_symbolic_link_is_refused(source, tmp_path):
    from evalkit.models.quantization import check_output

    _user_folder(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(QuantizationError, match="symbolic link"):
        check_output(tmp_path / "link", sources=[source])


def test_a_folder_evalkit_made_needs_force(source, tmp_path):
    from evalkit.models.quantization import check_output, made_by_evalkit

    made = tmp_path / "q"
    made.mkdir()
    (made / "provenance.json").write_text(json.dumps({"evalkit_recipe": "rtn-w4g128"}))
    assert made_by_evalkit(made)
    with pytest.raises(QuantizationError, match="pass --force to replace it"):
        check_output(made, sources=[source])
    assert check_output(made, sources=[source], force=True) == made
    assert check_output(tmp_path / "new", sources=[source]) == tmp_path / "new"  # a new folder is fine


def test_the_swap_never_removes_a_folder_it_did_not_make(tmp_path):
    theirs = _user_folder(tmp_path / "theirs")
    with pytest.raises(QuantizationError, match="not made by evalkit"):
        with atomic_folder(theirs):
            pass
    assert (theirs / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs"]  # no staging folder left either


def test_the_swap_replaces_what_evalkit_made_and_leaves_nothing_behind(tmp_path):
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "provenance.json").write_text(json.dumps({"build_key": "k"}))
    (ours / "old.safetensors").write_bytes(b"old")
    with atomic_folder(ours) as staging:
        (staging / "provenance.json").write_text(json.dumps({"build_key": "k2"}))
    assert sorted(p.name for p in ours.iterdir()) == ["provenance.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours"]
    assert oct(os.stat(ours).st_mode & 0o777) == "0o755"


@pytest.mark.slow
def test_force_replaces_a_model_evalkit_made(tmp_path, monkeypatch, run_cli):
    from tiny_models import tiny_qwen3

    source = tiny_qwen3()  # hidden 256: llmcompressor's group size 128 divides it
    monkeypatch.chdir(tmp_path)  # llmcompressor writes a logs/ folder into the working directory
    out = tmp_path / "q"
    assert run_cli("quantize", source, "--recipe", "rtn-w4g128", "--out", out, "-q").rc == 0
    first = (out / "provenance.json").read_text()
    refused = run_cli("quantize", source, "--recipe", "rtn-w4g128", "--out", out, "-q")
    assert refused.rc == 2 and "--force" in refused.line
    assert run_cli("quantize", source, "--recipe", "rtn-w4g128", "--out", out, "--force", "-q").rc == 0
    assert json.loads((out / "provenance.json").read_text())["evalkit_recipe"] == json.loads(first)["evalkit_recipe"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".q")]


CHATS = [  # (file content, words of the one line): the calibration file of `quantize --chat` (issue 15)
    ('{"messages": [{"role": "user", "content": "hi"}]}\n'.encode("utf-16"), ["not UTF-8 text"]),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), ["not UTF-8 text"]),
    (("[" * 100_000 + "]" * 100_000 + "\n").encode(), [":1: nested too deeply"]),
    (b'{"messages": [{"role": "robot", "content": "' + b"x" * 100_000 + b'"}]}\n', ["role", "content"]),
]


@pytest.mark.parametrize(("content", "words"), CHATS, ids=["utf16", "binary", "deep", "long-bad-message"])
def test_a_bad_chat_examples_file_is_one_short_line_before_any_model_loads(content, words, source, tmp_path,
                                                                           run_cli):
    chats = tmp_path / "chats.jsonl"
    chats.write_bytes(content)
    ran = run_cli("quantize", source, "--recipe", "gptq-w4g64", "--out", tmp_path / "q", "--chat", chats, "-q")
    assert ran.rc == 2 and str(chats) in ran.line and all(w in ran.line for w in words), ran.line
    assert len(ran.line) < 400 and not (tmp_path / "q").exists()
