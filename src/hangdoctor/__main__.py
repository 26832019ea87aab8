"""`python -m hangdoctor`: the same as the `hangdoctor` console script.

This file ships in hangdoctor-runtime, the command line in hangdoctor: with the runtime
installed alone, the CLI's modules or its dependencies are missing, which is said in one
sentence with the remedy (exit 2) rather than as an ImportError traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from hangdoctor.cli.main import entry
    except ImportError as exc:
        missing = exc.name or str(exc)
        sys.stderr.write(
            f"hangdoctor: the command line is not installed here ({missing} is missing): "
            "this environment has hangdoctor-runtime (the watchdog, middleware and pytest "
            "plugin) without the tool. Install the whole tool beside it: "
            "`pip install /path/to/hangdoctor` from a checkout.\n"
        )
        raise SystemExit(2) from None
    entry()


if __name__ == "__main__":
    main()
