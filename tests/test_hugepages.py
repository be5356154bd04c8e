"""glibc's huge-page tunable: when it applies, and the `meshsim` command starting itself
again with it."""

import os
import subprocess
import sys

import pytest

from meshsim import hugepages


def test_the_tunable_is_added_to_the_environment_once():
    env = hugepages.environment({"PATH": "/bin"}, supported_here=True)
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    assert env["PATH"] == "/bin" and env[hugepages.REEXECUTED] == "1"
    assert hugepages.active(env)
    # other tunables are kept
    env = hugepages.environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, supported_here=True)
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    # nothing to do: already set, switched off, started again already, not supported
    for given in (
        {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"},
        {hugepages.SWITCH: "0"},
        {hugepages.REEXECUTED: "1"},
    ):
        assert hugepages.environment(given, supported_here=True) is None
    assert hugepages.environment({}, supported_here=False) is None


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("always [madvise] never", True),
        ("[always] madvise never", True),
        ("always madvise [never]", False),
        (None, False),
    ],
)
def test_supported_needs_linux_glibc_2_35_and_huge_pages_not_switched_off(
    tmp_path, monkeypatch, mode, expected
):
    path = tmp_path / "enabled"
    if mode is not None:
        path.write_text(mode + "\n")
    monkeypatch.setattr(hugepages, "THP_MODE", str(path))
    assert hugepages.supported(system="Linux", libc=("glibc", "2.36")) is expected
    assert not hugepages.supported(system="Linux", libc=("glibc", "2.31"))
    assert not hugepages.supported(system="Linux", libc=("", ""))  # musl
    assert not hugepages.supported(system="Darwin", libc=("", ""))


def _meshsim(*args, **env):
    script = os.path.join(os.path.dirname(sys.executable), "meshsim")
    if not os.path.isfile(script):
        pytest.skip("no `meshsim` console script next to this Python")
    base = {k: v for k, v in os.environ.items() if k not in (hugepages.SWITCH, "GLIBC_TUNABLES")}
    return subprocess.run(
        [sys.executable, script, *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_meshsim_command_starts_itself_again_with_huge_pages(tmp_path):
    if not hugepages.supported():
        pytest.skip("huge pages through glibc's tunable do not apply on this machine")
    missing = str(tmp_path / "missing.py")
    out = _meshsim("-v", "train", "--config", missing, "--workdir", str(tmp_path / "run"))
    assert out.returncode == 1, out.stderr
    assert "started again with GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in out.stderr
    # the command's error is still its one line
    assert out.stderr.strip().splitlines()[-1].startswith("meshsim train: error:")
    # switched off: the process goes on as it is
    out = _meshsim(
        "-v",
        "train",
        "--config",
        missing,
        "--workdir",
        str(tmp_path / "run"),
        **{hugepages.SWITCH: "0"},
    )
    assert out.returncode == 1 and "started again" not in out.stderr
