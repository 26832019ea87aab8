"""Installed by `hangdoctor watch`: start a loop watchdog in every process of the server.

`hangdoctor watch` puts this folder, which holds this module alone, first on
PYTHONPATH, so every Python process the server starts (workers spawned or
forked) imports it at start-up. It installs the watchdog hook, then runs
whatever `sitecustomize` would have run without us, so the environment's own
customisation is kept. A server whose environment has no hangdoctor gets
watch's `hangdoctor` package and nothing else of watch's environment.
Nothing here may raise: a monitoring aid must never stop a server from starting.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not `typing`'s: this runs in every process, and typing costs an import
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType


class _OnlyHangdoctor:
    """Finds the `hangdoctor` package of watch's environment, and nothing else of it.

    Putting that environment's site-packages on `sys.path` would hand the server every
    package installed there (rich, click, ...), which its own environment may lack or
    have in other versions. This finder comes last on `sys.meta_path`, so a hangdoctor
    the server has itself still wins; hangdoctor's subpackages are found through the
    package's own `__path__`. The runtime it loads is standard library only.
    """

    def __init__(self, package_dir: str) -> None:
        self.package_dir = package_dir

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != "hangdoctor":
            return None
        import importlib.util

        return importlib.util.spec_from_file_location(
            name,
            os.path.join(self.package_dir, "__init__.py"),
            submodule_search_locations=[self.package_dir],
        )


def _install() -> None:
    import importlib.util

    if importlib.util.find_spec("hangdoctor") is None:
        # the server runs in another environment: borrow watch's hangdoctor, and only it
        package_dir = os.environ.get("HANGDOCTOR_WATCH_PACKAGE")
        if not package_dir or not os.path.isfile(os.path.join(package_dir, "__init__.py")):
            sys.stderr.write("hangdoctor watch: cannot import hangdoctor here; not watching\n")
            return
        sys.meta_path.append(_OnlyHangdoctor(package_dir))
    from hangdoctor.runtime.autoinstall import install_from_env

    install_from_env()


def _chain() -> None:
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


try:
    _install()
except Exception as exc:  # never keep the server from starting
    sys.stderr.write(f"hangdoctor watch: not watching ({exc.__class__.__name__}: {exc})\n")
try:
    _chain()
except Exception as exc:
    sys.stderr.write(f"hangdoctor watch: the environment's sitecustomize failed: {exc}\n")
