"""Lazy re-exports (PEP 562): a package's public names, imported from their submodules when
first used.

A package whose ``__init__`` imports its submodules eagerly makes every importer pay for
their dependencies (torch, PyTorch Geometric, Lightning): the ``deepsphere-pyg`` command,
for one, needs only the argument parsers of its subcommands. With::

    __getattr__, __dir__ = lazy_exports(__name__, {"Name": "submodule", ...}, __all__)

``from package import Name`` and ``package.Name`` import ``package.submodule`` on first
use (and keep the name in the package), ``dir(package)`` lists every public name, and
``package.submodule`` imports a submodule that is not imported yet, as it did when the
package imported them all.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str], names: Iterable[str] = ()
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: the package's ``__name__``.
        exports: public name -> the submodule (relative to ``package``) that defines it.
        names: further names for ``dir()`` (the package's ``__all__``).
    """
    exports = dict(exports)
    listed = sorted(set(exports) | set(names))

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is not None:
            value = getattr(importlib.import_module(f"{package}.{module}"), name)
            setattr(sys.modules[package], name, value)
            return value
        if not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}"):
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(listed))

    return __getattr__, __dir__
