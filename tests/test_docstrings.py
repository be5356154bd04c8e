"""Every public name of `meshsim.__all__` has a docstring, and so has every public
method and property of a public class (inherited ones are checked where defined).

A name is public when it does not start with an underscore; dataclass-generated
and flax-generated members are left out (they are not written by hand), and so
are members inherited from outside meshsim.
"""

import inspect

import meshsim

# Modules whose public classes' members are checked: meshsim's own.
OWN = "meshsim"


def _own(obj) -> bool:
    return (getattr(obj, "__module__", None) or "").startswith(OWN)


def _documented(obj) -> bool:
    return bool((inspect.getdoc(obj) or "").strip())


def _members(cls):
    """(name, object) of the public methods and properties `cls` defines itself."""
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if isinstance(value, property):
            yield name, value.fget
        elif inspect.isfunction(value) and _own(value):
            yield name, value


def missing_docstrings() -> list[str]:
    missing = []
    for name in meshsim.__all__:
        obj = getattr(meshsim, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # constants (NUM_NODE_TYPES, __version__) have none
        if not _documented(obj):
            missing.append(f"meshsim.{name}")
        if inspect.isclass(obj):
            for cls in obj.__mro__:
                if not _own(cls):
                    continue
                for member, fn in _members(cls):
                    if fn is not None and not (inspect.getdoc(fn) or "").strip():
                        missing.append(f"meshsim.{name}.{member} ({cls.__qualname__})")
    return sorted(set(missing))


def test_public_api_has_docstrings():
    missing = missing_docstrings()
    assert not missing, "public names without a docstring:\n  " + "\n  ".join(missing)
