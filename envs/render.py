"""Rendering with numpy only (no display needed), and saving frames as PNG or GIF.

``python -m envs.gallery [path]`` writes a picture of the default tasks side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from envs.tasks import ARENA, DEFAULT_TASKS, TaskSpec, get_task

PALETTE = np.array(
    [
        [31, 119, 180],  # kind 0 blue
        [255, 127, 14],  # kind 1 orange
        [148, 103, 189],  # kind 2 purple
        [23, 190, 207],  # kind 3 cyan
        [227, 119, 194],  # kind 4 pink
        [188, 189, 34],  # kind 5 olive
        [140, 86, 75],  # kind 6 brown
        [127, 127, 127],  # kind 7 grey
    ],
    dtype=np.uint8,
)
"""Landmark colour of kind k is PALETTE[k % len(PALETTE)]."""

_BACKGROUND = np.array([246, 246, 240], dtype=np.uint8)
_WALL = np.array([60, 60, 60], dtype=np.uint8)
_GOAL = np.array([44, 160, 44], dtype=np.uint8)
_START = np.array([210, 210, 200], dtype=np.uint8)
_AGENT = np.array([214, 39, 40], dtype=np.uint8)

Circle = tuple[float, float, float, int, bool]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """World coordinates of pixel centres (y up), and the arena units per pixel."""
    border = max(2, size // 64)
    inner = size - 2 * border
    scale = 2 * ARENA / inner
    coords = (np.arange(size) - border + 0.5) * scale - ARENA
    return coords[None, :], -coords[:, None], scale


def draw_scene(
    size: int,
    goal: Sequence[float],
    goal_radius: float,
    landmarks: Sequence[Circle],
    agent: Sequence[float] | None = None,
    start: Sequence[float] | None = None,
    start_radius: float = 0.0,
) -> np.ndarray:
    """Draw one scene, shape (size, size, 3) uint8.

    :param size: image side in pixels.
    :param goal: goal centre (x, y), arena units.
    :param goal_radius: goal radius, arena units (the goal is drawn as a green disc with a darker
        rim).
    :param landmarks: circles ``(x, y, radius, kind, solid)``; landmark-only ones are drawn as light
        discs with a rim in their kind's colour, solid ones filled dark.
    :param agent: agent position (red dot), if any.
    :param start: centre (x, y) of the start region (a light grey disc), if any.
    :param start_radius: radius of the start region, arena units.
    :return: the RGB image, uint8 of shape (size, size, 3).
    """
    x, y, px = _grid(size)
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[...] = _WALL
    inside = (np.abs(x) <= ARENA) & (np.abs(y) <= ARENA)
    img[inside] = _BACKGROUND

    def disc(cx: float, cy: float, r: float) -> np.ndarray:
        return (x - cx) ** 2 + (y - cy) ** 2 <= r * r

    def blend(mask: np.ndarray, colour: np.ndarray, alpha: float) -> None:
        img[mask] = (alpha * colour + (1 - alpha) * img[mask]).astype(np.uint8)

    if start is not None and start_radius > 0:
        blend(disc(start[0], start[1], start_radius), _START, 0.8)
    gx, gy = float(goal[0]), float(goal[1])
    blend(disc(gx, gy, goal_radius), _GOAL, 0.45)
    rim = disc(gx, gy, goal_radius) & ~disc(gx, gy, goal_radius - 2 * px)
    img[rim] = _GOAL
    for cx, cy, r, kind, solid in landmarks:
        colour = PALETTE[kind % len(PALETTE)]
        full = disc(cx, cy, r)
        if solid:
            img[full] = (0.45 * colour).astype(np.uint8)
        else:
            blend(full, colour, 0.35)
            img[full & ~disc(cx, cy, r - 2 * px)] = colour
    if agent is not None:
        ax, ay = float(agent[0]), float(agent[1])
        img[disc(ax, ay, max(0.035, 3 * px))] = _AGENT
    return img


def draw_task(
    task: TaskSpec | str, size: int = 256, agent: Sequence[float] | None = None
) -> np.ndarray:
    """Picture of a task's canonical context (start region, goal, landmarks)."""
    spec = get_task(task) if isinstance(task, str) else task
    return draw_scene(
        size,
        spec.goal,
        spec.goal_radius,
        [(lm.x, lm.y, lm.radius, lm.kind, lm.solid) for lm in spec.landmarks],
        agent=agent,
        start=spec.start,
        start_radius=spec.start_radius,
    )


def tile(
    frames: Sequence[np.ndarray] | np.ndarray, ncols: int | None = None, pad: int = 4
) -> np.ndarray:
    """Arrange K frames of equal shape (H, W, 3) in a grid, white padding between them."""
    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise ValueError("frames must not be empty")
    h, w = frames[0].shape[:2]
    k = len(frames)
    ncols = ncols or int(np.ceil(np.sqrt(k)))
    nrows = int(np.ceil(k / ncols))
    out = np.full(
        (nrows * h + (nrows - 1) * pad, ncols * w + (ncols - 1) * pad, 3), 255, dtype=np.uint8
    )
    for i, f in enumerate(frames):
        r, c = divmod(i, ncols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = f[..., :3]
    return out


def save_frames(
    frames: np.ndarray | Sequence[np.ndarray],
    path: str | Path,
    fps: int = 10,
    ncols: int | None = None,
) -> Path:
    """Save frames to ``path``.

    ``.png``: one frame (H, W, 3) as is, or several frames (K, H, W, 3) as a grid.
    ``.gif``: an animation of the K frames at ``fps`` frames per second.
    Frames are uint8 RGB. Parent folders are created. Returns the path.
    """
    from PIL import Image

    path = Path(path)
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        arr = [frames]
    else:
        arr = [np.asarray(f) for f in frames]
    if not arr:
        raise ValueError("frames must not be empty")
    for f in arr:
        if f.ndim != 3 or f.shape[2] not in (3, 4):
            raise ValueError(f"frames must have shape (H, W, 3), got {f.shape}")
    arr = [f.astype(np.uint8) for f in arr]
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".png":
        img = arr[0] if len(arr) == 1 else tile(arr, ncols)
        Image.fromarray(img[..., :3]).save(path)
    elif suffix == ".gif":
        if fps <= 0:
            raise ValueError(f"fps={fps} must be in (0, inf)")
        images = [Image.fromarray(f[..., :3]) for f in arr]
        images[0].save(
            path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0
        )
    else:
        raise ValueError(f"path suffix {path.suffix!r} is unsupported; allowed: ['.png', '.gif']")
    return path


def task_gallery(task_names: Sequence[str] | None = None, size: int = 256) -> np.ndarray:
    """The tasks side by side, each labelled with its name, as one uint8 RGB image."""
    from PIL import Image, ImageDraw

    names = list(task_names or DEFAULT_TASKS)
    label_h = max(18, size // 10)
    panels = []
    for name in names:
        panel = Image.new("RGB", (size, size + label_h), (255, 255, 255))
        panel.paste(Image.fromarray(draw_task(name, size)), (0, 0))
        draw = ImageDraw.Draw(panel)
        draw.text((size // 2, size + label_h // 2), name, fill=(0, 0, 0), anchor="mm")
        panels.append(np.asarray(panel))
    return tile(panels, ncols=len(panels), pad=8)
