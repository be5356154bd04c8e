"""One import path per public name: each package's `__all__` is its public surface, no
object is exported by two packages, and the top-level names re-export those objects."""

import importlib

import pytest

import meshsim

PACKAGES = (
    "config",
    "data",
    "diagnostics",
    "evaluation",
    "graph",
    "meshes",
    "models",
    "parallel",
    "plotting",
    "runs",
    "solvers",
    "tasks",
    "training",
)


def _exports(package: str) -> dict[str, object]:
    module = importlib.import_module(f"meshsim.{package}")
    return {name: getattr(module, name) for name in module.__all__}


@pytest.mark.parametrize("package", PACKAGES)
def test_every_listed_name_exists_and_is_public(package):
    exports = _exports(package)
    assert exports and all(not name.startswith("_") for name in exports)


def test_no_object_is_exported_by_two_packages():
    owners: dict[int, list[str]] = {}
    for package in PACKAGES:
        for name, obj in _exports(package).items():
            if callable(obj) or isinstance(obj, type):
                owners.setdefault(id(obj), []).append(f"{package}.{name}")
    shared = [names for names in owners.values() if len(names) > 1]
    assert not shared, f"exported by more than one package: {shared}"


def test_top_level_names_are_the_packages_objects():
    everything = {}
    for package in PACKAGES:
        everything.update({id(obj): name for name, obj in _exports(package).items()})
    for module in (meshsim.nn, meshsim.attention, meshsim.node_types, meshsim.simulator):
        everything.update({id(getattr(module, n)): n for n in dir(module) if not n.startswith("_")})
    for name in meshsim.__all__:
        if name != "__version__":
            assert id(getattr(meshsim, name)) in everything, name


def test_graph_keeps_partition_internals_out():
    assert not {"partition_graph", "HaloTables", "gather_outputs"} & set(meshsim.graph.__all__)
