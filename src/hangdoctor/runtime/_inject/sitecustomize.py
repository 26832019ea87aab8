"""Installed by `hangdoctor watch`: start a loop watchdog in every process of the server.

`hangdoctor watch` puts this folder first on PYTHONPATH, so every Python
process the server starts (workers spawned or forked) imports this module at
start-up. It installs the watchdog hook, then runs whatever `sitecustomize`
would have run without us, so the environment's own customisation is kept.
Nothing here may raise: a monitoring aid must never stop a server from starting.
"""

from __future__ import annotations

import os
import sys


def _install() -> None:
    try:
        from hangdoctor.runtime.autoinstall import install_from_env
    except ImportError:
        # the server runs in another environment: borrow hangdoctor from the watch command's
        parent = os.environ.get("HANGDOCTOR_WATCH_PATH")
        if not parent:
            return
        sys.path.append(parent)
        try:
            from hangdoctor.runtime.autoinstall import install_from_env
        except ImportError:
            sys.stderr.write("hangdoctor watch: cannot import hangdoctor here; not watching\n")
            return
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
