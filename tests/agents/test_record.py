"""agents.record: the metrics.json layout, its round trip, clear errors and the strength rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.record import (
    RECORD_FILE,
    RecordError,
    RunInfo,
    build_record,
    read_record,
    stream_info,
    strength_name,
    write_record,
)
from envs import StreamSpec


def run_info(**kw: object) -> RunInfo:
    info: RunInfo = {
        "method": "si_plateau",
        "stream": "quick",
        "algo": "ppo",
        "seed": 0,
        "strength": 1.0,
        "strength_name": "c",
        "overrides": ["continual=si_plateau", "seed=0"],
        "total_steps": 2048,
        "num_timesteps": 2048,
        "consolidations": 1,
        "shifts": 1,
        "state_bytes": 0,
    }
    info.update(kw)  # type: ignore[typeddict-item]
    return info


METRICS = {
    "average_performance": 0.5,
    "average_forgetting": None,
    "average_plasticity": 0.75,
    "average_auc": 0.4,
    "forward_transfer": None,
    "per_task": {},
    "n_evals": 2,
    "eval_steps": [0, 2048],
    "task_names": ["north", "south"],
}


def test_strength_name_is_the_adaptive_target_when_set_else_c() -> None:
    assert strength_name("si", None) == "c"
    assert strength_name("si", 0.2) == "adaptive_target"
    assert strength_name(None, None) is None
    assert strength_name(None, 0.2) is None  # no regulariser: no strength at all


def test_stream_info_of_a_stream_and_of_a_joint_run() -> None:
    spec = StreamSpec(schedule=[("north", 100), ("south", 100), ("north", 100)], blur=50)
    assert stream_info(spec, joint=False) == {
        "tasks": ["north", "south"],
        "windows": [[200, 300], [100, 200]],
        "boundaries": [100, 200],
        "blur": 50,
        "joint": False,
    }
    joint = stream_info(StreamSpec.joint(["north", "south"], 300), joint=True)
    assert joint["windows"] == [[0, 300], [0, 300]] and joint["boundaries"] == []
    assert joint["joint"] is True


def test_build_record_keeps_the_file_order_and_appends_the_stream() -> None:
    stream = stream_info(StreamSpec.sequence(["north", "south"], 1024), joint=False)
    record = build_record(run_info(), [[0.0, 0.0], [1.0, 0.5]], METRICS, stream)
    assert list(record) == ["run", "success_matrix", *METRICS, "stream"]


def test_round_trip(tmp_path: Path) -> None:
    stream = stream_info(StreamSpec.sequence(["north", "south"], 1024), joint=False)
    record = build_record(run_info(), [[0.0, 0.0], [1.0, 0.5]], METRICS, stream)
    path = write_record(tmp_path / "run", record)
    assert path == tmp_path / "run" / RECORD_FILE
    assert path.read_text() == json.dumps(record, indent=2)
    assert read_record(tmp_path / "run") == record  # the run directory
    assert read_record(path) == record  # or the file
    assert not [p for p in path.parent.iterdir() if p.name != RECORD_FILE]  # no temp files


def test_an_older_record_without_the_stream_block_reads(tmp_path: Path) -> None:
    (tmp_path / RECORD_FILE).write_text(json.dumps({"run": run_info(), **METRICS}))
    assert "stream" not in read_record(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "no run record"),
        ('{"average_perf', "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"run": [1]}', "field 'run' must be an object"),
    ],
)
def test_missing_or_garbled_records_are_named(tmp_path: Path, text: str | None, message: str):
    if text is not None:
        (tmp_path / RECORD_FILE).write_text(text)
    with pytest.raises(RecordError, match=message) as info:
        read_record(tmp_path)
    assert str(tmp_path / RECORD_FILE) in str(info.value)
    assert isinstance(info.value, ValueError)
