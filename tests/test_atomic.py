"""meshsim.atomic: temporary sibling files renamed onto the target, never left behind."""

import json
import os
import re

import pytest

from meshsim.atomic import AtomicFile, AtomicWriter, atomic_path, write_json, write_text


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "w") as f:
            f.write("new")
        assert not target.exists()  # nothing under the final name until the block ends
        assert os.listdir(tmp_path) == [os.path.basename(tmp)]
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_exception_keeps_old_file_and_removes_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        with open(tmp, "w") as f:
            f.write("half-written")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_exception_before_the_temporary_exists(tmp_path):
    with pytest.raises(KeyError), atomic_path(tmp_path / "never.json"):
        raise KeyError("x")
    assert os.listdir(tmp_path) == []


def test_failed_rename_removes_temporary(tmp_path):
    (tmp_path / "taken").mkdir()  # a directory cannot be replaced by a file
    with pytest.raises(OSError), atomic_path(tmp_path / "taken") as tmp:
        with open(tmp, "w") as f:
            f.write("data")
    assert os.listdir(tmp_path) == ["taken"]


def test_temporary_is_a_dot_sibling_that_keeps_the_extension(tmp_path):
    f = AtomicFile(tmp_path / "train.h5")
    assert f.path == str(tmp_path / "train.h5")
    directory, name = os.path.split(f.tmp)
    assert directory == str(tmp_path)
    assert re.fullmatch(r"\.train\.h5\.\d+-[0-9a-f]{8}\.tmp\.h5", name)
    assert os.path.splitext(f.tmp)[1] == ".h5"
    assert AtomicFile(tmp_path / "README").tmp.endswith(".tmp")  # no extension to keep
    assert AtomicFile(tmp_path / "train.h5").tmp != f.tmp  # concurrent writers do not clash


def test_commit_and_discard(tmp_path):
    f = AtomicFile(tmp_path / "a.bin")
    with open(f.tmp, "wb") as out:
        out.write(b"\x00\x01")
    assert f.commit() == str(tmp_path / "a.bin")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["a.bin"]

    g = AtomicFile(tmp_path / "a.bin")
    with open(g.tmp, "wb") as out:
        out.write(b"other")
    g.discard()
    g.discard()  # idempotent: no error once the temporary is gone
    AtomicFile(tmp_path / "b.bin").discard()  # nor if it never existed
    assert os.listdir(tmp_path) == ["a.bin"]
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"


def test_relative_path_survives_chdir(tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    f = AtomicFile("out.txt")
    assert f.path == "out.txt"
    with open(f.tmp, "w") as out:
        out.write("x")
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert f.commit() == "out.txt"
    assert (tmp_path / "out.txt").read_text() == "x"
    assert os.listdir(tmp_path / "elsewhere") == []


def test_write_json_round_trips(tmp_path):
    data = {"b": [1, 2.5, None], "a": {"nested": True}, "text": "µ-ε"}
    path = write_json(tmp_path / "meta.json", data)
    assert path == str(tmp_path / "meta.json")
    text = (tmp_path / "meta.json").read_text(encoding="utf-8")
    assert json.loads(text) == data
    assert text == json.dumps(data, indent=2) + "\n"
    write_json(tmp_path / "meta.json", [1], indent=None)  # overwrites
    assert (tmp_path / "meta.json").read_text() == "[1]\n"
    assert os.listdir(tmp_path) == ["meta.json"]


def test_write_text(tmp_path):
    assert write_text(tmp_path / "a.txt", "hello\n") == str(tmp_path / "a.txt")
    assert (tmp_path / "a.txt").read_text() == "hello\n"
    assert os.listdir(tmp_path) == ["a.txt"]


class LinesWriter(AtomicWriter):
    """A minimal subclass: a text file whose last line, written by `_finish`, counts the
    lines before it; `fail_finish` makes that last write fail."""

    def __init__(self, path, *, fail_open=False, fail_finish=False):
        self.lines, self.fail_open, self.fail_finish = 0, fail_open, fail_finish
        super().__init__(path)

    def _open(self, tmp):
        handle = open(tmp, "w")
        if self.fail_open:
            handle.close()
            raise OSError("disk full")
        return handle

    def _finish(self, handle):
        if self.fail_finish:
            raise OSError("disk full")
        handle.write(f"{self.lines} lines\n")
        handle.close()

    def write(self, line):
        self._handle().write(line + "\n")
        self.lines += 1


def test_atomic_writer_publishes_on_commit_only(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    w = LinesWriter(path)
    w.write("a")
    (tmp_name,) = set(os.listdir(tmp_path)) - {"out.txt"}
    assert re.fullmatch(r"\.out\.txt\.\d+-[0-9a-f]{8}\.tmp\.txt", tmp_name)
    assert path.read_text() == "old\n" and not w.closed
    assert w.commit() == str(path) and w.closed
    assert path.read_text() == "a\n1 lines\n" and os.listdir(tmp_path) == ["out.txt"]
    assert w.commit() == str(path)  # idempotent
    w.discard()  # a no-op once committed: the published file stays
    assert path.read_text() == "a\n1 lines\n"
    with pytest.raises(ValueError, match=r"^LinesWriter for .*out\.txt is closed$"):
        w.write("b")


def test_atomic_writer_discard_leaves_the_old_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    w = LinesWriter(path)
    w.write("a")
    w.discard()
    w.discard()  # idempotent
    assert w.closed and os.listdir(tmp_path) == ["out.txt"] and path.read_text() == "old\n"
    with pytest.raises(ValueError, match="was discarded"):
        w.commit()  # nothing left to publish


def test_atomic_writer_context_commits_or_discards(tmp_path):
    with LinesWriter(tmp_path / "a.txt") as w:
        w.write("x")
    assert (tmp_path / "a.txt").read_text() == "x\n1 lines\n"
    with pytest.raises(RuntimeError, match="diverged"), LinesWriter(tmp_path / "b.txt") as w:
        w.write("x")
        raise RuntimeError("diverged")
    assert os.listdir(tmp_path) == ["a.txt"]


def test_atomic_writer_failures_leave_nothing_behind(tmp_path):
    with pytest.raises(OSError, match="disk full"):
        LinesWriter(tmp_path / "a.txt", fail_open=True)
    assert os.listdir(tmp_path) == []
    w = LinesWriter(tmp_path / "a.txt", fail_finish=True)
    w.write("x")
    with pytest.raises(OSError, match="disk full"):
        w.commit()
    assert os.listdir(tmp_path) == [] and w.closed
    with pytest.raises(ValueError, match="was discarded"):
        w.commit()
