"""Write a picture of the default tasks side by side.

python -m envs.gallery [path]        # default: docs/img/tasks.png
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from envs.render import save_frames, task_gallery


def main(argv: Sequence[str] | None = None) -> Path:
    args = list(sys.argv[1:] if argv is None else argv)
    path = save_frames(task_gallery(), Path(args[0] if args else "docs/img/tasks.png"))
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
