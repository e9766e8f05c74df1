"""``python tune.py ARGS`` runs the study kit's tuner: the same as ``python -m studies.tune ARGS``
(see :mod:`studies.tune`)."""

import sys

from studies.tune import main

if __name__ == "__main__":
    sys.exit(main())
