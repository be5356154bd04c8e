"""docs/ARCHITECTURE.md names every module of the package, and only those."""

import pathlib
import re
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")


def _modules() -> set[str]:
    package = ROOT / "meshsim"
    return {p.relative_to(package).as_posix() for p in package.rglob("*.py")}


def test_every_module_is_named_in_the_architecture_document():
    missing = sorted(m for m in _modules() if f"`{m}`" not in DOC)
    assert not missing, f"docs/ARCHITECTURE.md does not name {missing}"


def test_the_architecture_document_names_no_module_that_does_not_exist():
    named = {m for m in re.findall(r"`([a-z_/]+\.py)`", DOC) if not m.startswith("tests/")}
    assert not named - _modules(), f"named but missing: {sorted(named - _modules())}"


def test_the_layer_table_lists_the_import_linter_layers_in_order():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [layers] = [
        c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    ]
    table = DOC[DOC.index("| layer |") :]
    positions = []
    for layer in layers:
        names = re.split(r"\s*[|:]\s*", layer)
        found = [table.find(f"`{n}`") for n in names]
        assert min(found) >= 0, f"layer {layer!r} is not in the table"
        positions.append(min(found))
    assert positions == sorted(positions), "the table's order differs from the contract's"


# A task's name or type compared outside meshsim/tasks/ (a domain switch).
DOMAIN_SWITCH = re.compile(
    r"""(task[_.]name\s*(==|!=|\bin\b))|(==\s*["'](cfd|cloth|weather)["'])|"""
    r"""(isinstance\([^)]*\b\w*Task\b)"""
)


def test_no_domain_decision_outside_the_tasks_package():
    package = ROOT / "meshsim"
    hits = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in package.rglob("*.py")
        if "tasks" not in p.relative_to(package).parts
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if DOMAIN_SWITCH.search(line)
    ]
    assert not hits, "\n".join(hits)
