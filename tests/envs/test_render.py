"""Rendering: frame shape/dtype, PNG and GIF output, the task gallery."""

import numpy as np
import pytest
from PIL import Image

from envs import NavEnv, StreamSpec, make_vec_env, save_frames
from envs.render import PALETTE, draw_task, task_gallery


def test_single_env_frames() -> None:
    env = NavEnv(task="north", render_mode="rgb_array", world={"render_size": 96})
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8
    assert NavEnv(task="north").render() is None


def test_frame_shows_landmarks_goal_and_agent() -> None:
    frame = draw_task("north", size=128, agent=(0.0, 0.0))
    colours = {tuple(c) for c in frame.reshape(-1, 3)}
    assert tuple(PALETTE[0]) in colours  # landmark rims of kind 0
    assert (214, 39, 40) in colours  # agent
    assert (44, 160, 44) in colours  # goal rim


def test_save_png_single_and_grid_and_gif(tmp_path) -> None:
    env = make_vec_env(
        StreamSpec(schedule=[("southwest", 100)]), n_envs=2, seed=0, world={"render_size": 64}
    )
    env.reset()
    frames = []
    for _ in range(5):
        env.step(np.ones((2, 2), dtype=np.float32))
        frames.append(env.get_images()[0])
    single = save_frames(frames[0], tmp_path / "one.png")
    assert Image.open(single).size == (64, 64)
    grid = save_frames(frames, tmp_path / "sub" / "grid.png", ncols=5)
    assert Image.open(grid).size == (5 * 64 + 4 * 4, 64)
    gif = save_frames(np.stack(frames), tmp_path / "anim.gif", fps=5)
    with Image.open(gif) as im:
        assert im.n_frames == 5
    with pytest.raises(ValueError, match="suffix"):
        save_frames(frames, tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="shape"):
        save_frames([np.zeros((4, 4))], tmp_path / "bad.png")


def test_task_gallery() -> None:
    img = task_gallery(["north", "south"], size=64)
    assert img.dtype == np.uint8 and img.shape[1] == 2 * 64 + 8


def test_gallery_script_writes_png(tmp_path) -> None:
    from envs.gallery import main

    path = main([str(tmp_path / "tasks.png")])
    assert Image.open(path).size[0] > Image.open(path).size[1]
