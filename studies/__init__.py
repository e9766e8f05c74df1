"""The study kit: reports over many runs, the Optuna tuner and the research scripts.

It may import every part of the project; nothing outside ``studies/`` and ``tests/`` imports it,
and it is not installed with the library (``pip install`` ships ``continual``, ``envs`` and
``agents``). Run its tools from a source checkout, e.g. ``python -m studies.report DIR``.
"""
