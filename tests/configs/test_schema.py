"""Run configs saved by the previous release resume with the same method, or are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

import train
from configs.schema import Config, upgrade_saved_config
from continual import SI, ContinualCallback, OnlineEWC

SAVED = Path(__file__).parent / "saved_by_0_1"


def upgraded(name: str) -> ContinualCallback:
    written = yaml.safe_load((SAVED / f"{name}.yaml").read_text())
    cfg = OmegaConf.merge(OmegaConf.structured(Config), upgrade_saved_config(written))
    return train.continual_callback(cfg)


def same_options(cb: ContinualCallback, reference: ContinualCallback) -> None:
    """The regulariser options of ``cb`` equal ``reference``'s, up to spelling (the old
    configs spelled out float32 storage and gave ``exclude`` as a list)."""
    got = dict(cb.consolidation.regulariser_kwargs)
    assert got.pop("storage_dtype") == "float32"
    got["exclude"] = tuple(got["exclude"])
    assert got == reference.consolidation.regulariser_kwargs


@pytest.mark.parametrize(
    ("saved", "reference", "cls"),
    [
        # 0.1's si_keep held the actor alone, and its config says so (params: actor).
        ("si_keep", ContinualCallback("si", select="actor"), SI),
        ("si_plateau", ContinualCallback("si_paper"), SI),
        ("ewc", ContinualCallback("ewc"), OnlineEWC),
    ],
)
def test_saved_methods_resume_with_the_same_regulariser(saved, reference, cls) -> None:
    cb = upgraded(saved)
    assert cb.consolidation.spec is cls
    same_options(cb, reference)
    assert type(cb.detector.trigger).__name__ == "PlateauTrigger"
    (action,) = cb.detector.on_shift
    assert action.log_std == 0.0


def test_saved_finetuning_resumes_without_regulariser() -> None:
    cb = upgraded("finetune")
    assert cb.consolidation.spec is None and cb.strength is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"clip_penalty": False}, "clip_penalty=false"),
        ({"on_shift": {"reset_log_std": 0.0, "ent_coef": 0.1}}, "shift actions"),
    ],
)
def test_removed_options_are_refused_with_the_reason(change, named) -> None:
    written = yaml.safe_load((SAVED / "si_keep.yaml").read_text())
    written["continual"].update(change)
    with pytest.raises(ValueError, match=named):
        upgrade_saved_config(written)


def test_todays_config_passes_unchanged() -> None:
    today = {"continual": {"_target_": "continual.ContinualCallback", "name": "x"}}
    assert upgrade_saved_config(today) == today
