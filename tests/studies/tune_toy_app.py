"""A training stand-in with train.py's ``run`` signature, for fast tests of studies.tune's study
mechanics. Its success curve peaks at c = 1 and scales with ``quality``."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

CONFIG_DIR = Path(__file__).resolve().parent / "tune_toy_configs"
CONFIG_NAME = "config"
EVAL_STEPS = (100, 200, 300, 400)


def run(cfg: DictConfig, output_dir: str | Path, on_eval=None) -> dict[str, Any]:
    c = float(cfg.continual.c)
    if c > float(cfg.fail_above):
        raise RuntimeError(f"loss became NaN (continual.c={c:g})")
    peak = math.exp(-(math.log10(max(c, 1e-12)) ** 2)) if cfg.continual.regulariser else 0.3
    final = float(cfg.quality) * peak
    rows = []
    for step in EVAL_STEPS:
        value = final * step / EVAL_STEPS[-1]
        rows.append([value, value])
        time.sleep(float(cfg.sleep))
        if on_eval is not None:
            on_eval(step, {"eval/avg_success": value})
    metrics = {
        "run": {
            "method": cfg.continual.regulariser or "finetune",
            "seed": int(cfg.seed),
            "strength": c,
            "strength_name": "c",
            "overrides": [],
        },
        "task_names": ["A", "B"],
        "eval_steps": list(EVAL_STEPS),
        "success_matrix": rows,
        "average_performance": final,
        "average_forgetting": 0.1 * final,
    }
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics))
    return metrics
