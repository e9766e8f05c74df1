"""``python -m continual.report`` runs the study kit's report, ``python -m studies.report``.

The report is part of the study kit (``studies/`` in a source checkout), not of the library:
the library never imports it. This module only forwards the command line to it by module name,
so an installed library without the study kit says so instead of failing on an import.
"""

from __future__ import annotations

import importlib.util
import runpy
import sys

TARGET = "studies.report"


def main() -> int:
    """Run ``python -m studies.report`` with this process's arguments.

    :return: the exit status: the report's, or 2 when the study kit is not importable.
    """
    try:
        found = importlib.util.find_spec(TARGET) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        print(
            f"error: the report lives in the study kit ({TARGET}), which ships with the source "
            "checkout, not with the installed library; run `python -m studies.report ...` "
            "from the repository root",
            file=sys.stderr,
        )
        return 2
    sys.argv[0] = TARGET
    try:
        runpy.run_module(TARGET, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
