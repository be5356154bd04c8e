"""The documentation site builds with `mkdocs build --strict`: every warning fails it.

That covers broken links and anchors between pages, unresolved cross-references to
API names (`[name][meshsim.X]`), an API page whose package griffe cannot find, and
docstrings griffe cannot parse as Google style (an `Args:` entry naming a parameter
the signature lacks included). Tolerated: "no type or annotation" (turned off in
`mkdocs.yml`: meshsim writes shapes in prose and does not require annotations).
griffe reads meshsim's source statically, so the build imports no jax (~4 s on 2
cores).
"""

import importlib.util
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed: the `docs` extra (part of `dev`) is missing",
)
def test_docs_build_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        # Material's end-of-life notice is a banner, not a build warning; keep it out of
        # the output shown on failure.
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"mkdocs build --strict exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "api" / "meshsim" / "index.html").is_file()
