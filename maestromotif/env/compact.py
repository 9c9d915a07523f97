"""The compact observation actors send to the learner: names, shapes, dtypes.

One definition for everyone: the field names are exactly those of
``EnvStepBatch`` in ``protos/maestromotif/v1/learner.proto`` and a batch is a
dict of C-ordered numpy arrays whose first axis is the environment index.
The functions here turn raw NLE buffers of many environments into that form
in a few vectorized numpy operations.
"""

from __future__ import annotations

from typing import Final

import numpy as np

CROP_SIZE: Final = 12
CROP_HALF: Final = CROP_SIZE // 2  # top-left of the crop is (row - 6, col - 6)
MESSAGE_LENGTH: Final = 256
NUM_BLSTATS: Final = 27  # NLE's own blstats
STATS_LENGTH: Final = 35  # 27 + spell, potion slots, food slots + 5-way skill one-hot
SKILL_ONEHOT_OFFSET: Final = 30
NUM_SKILLS: Final = 5
STAT_CHANGE_LENGTH: Final = 5  # [delta depth, 0, 0, 0, 0]
TTY_ROWS: Final = 24
TTY_COLS: Final = 80

# index of the extra stats entries (method.md 2.3)
STAT_SPELL: Final = 27  # starting spell: healing 0, protection 1, sleep 2
STAT_POTIONS: Final = 28  # number of potion inventory slots
STAT_FOOD: Final = 29  # number of food inventory slots

# name -> (per-env shape, dtype); the order is the proto's field order
FIELDS: Final[dict[str, tuple[tuple[int, ...], np.dtype]]] = {
    "tty_chars": ((CROP_SIZE, CROP_SIZE), np.dtype(np.uint8)),
    "tty_colors": ((CROP_SIZE, CROP_SIZE), np.dtype(np.uint8)),
    "messages": ((MESSAGE_LENGTH,), np.dtype(np.uint8)),
    "stats": ((STATS_LENGTH,), np.dtype(np.float32)),
    "skills": ((), np.dtype(np.uint8)),
    "message_counts": ((), np.dtype(np.float32)),
    "stat_changes": ((STAT_CHANGE_LENGTH,), np.dtype(np.float32)),
}

CompactBatch = dict[str, np.ndarray]


def _scale_vector() -> np.ndarray:
    """Per-entry scale of the 35-vector (method.md 2.3); entries not listed are 0."""
    s = np.zeros(STATS_LENGTH, dtype=np.float32)
    s[0] = 1.0 / 79.0  # x
    s[1] = 1.0 / 21.0  # y
    for i in (10, 11, 14, 15, 16, 18):  # HP, max HP, energy, max energy, AC, XP level
        s[i] = 1.0 / 10.0
    s[20] = 1.0 / 1000.0  # time
    for i in (21, 23, 25):  # hunger, dungeon number, condition bitmask: raw
        s[i] = 1.0
    s[27:] = 1.0  # spell, potion slots, food slots, skill one-hot
    return s


STATS_SCALE: Final = _scale_vector()


def allocate(n: int) -> CompactBatch:
    """Zeroed compact arrays for ``n`` environments."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return {name: np.zeros((n, *shape), dtype=dt) for name, (shape, dt) in FIELDS.items()}


def nbytes_per_env() -> int:
    """Bytes one environment's compact observation takes on the wire."""
    return sum(int(np.prod(shape, dtype=np.int64)) * dt.itemsize for shape, dt in FIELDS.values())


def validate(batch: CompactBatch, n: int | None = None) -> int:
    """Check names, dtypes and shapes of a compact batch; return its size.

    Raises ValueError naming the field and the reason.
    """
    missing = set(FIELDS) - set(batch)
    if missing:
        raise ValueError(f"compact batch misses fields {sorted(missing)}")
    for name, (shape, dt) in FIELDS.items():
        a = batch[name]
        if not isinstance(a, np.ndarray):
            raise ValueError(f"{name}: expected a numpy array, got {type(a).__name__}")
        if n is None:
            n = a.shape[0] if a.ndim else -1
        if a.dtype != dt:
            raise ValueError(f"{name}: dtype {a.dtype}, expected {dt}")
        if a.shape != (n, *shape):
            raise ValueError(f"{name}: shape {a.shape}, expected {(n, *shape)}")
    assert n is not None
    return n


class Cropper:
    """12x12 crops around the heroes of N [24, 80] tty arrays, top-left at (row - 6, col - 6).

    Cells off the screen are 0. The screens are copied into a zero-bordered
    buffer so that every crop is one flat gather: a handful of numpy calls
    for the whole batch, whatever N is.
    """

    def __init__(self, n: int, rows: int = TTY_ROWS, cols: int = TTY_COLS) -> None:
        self.n, self.rows, self.cols = n, rows, cols
        self._pad = np.zeros((n, rows + CROP_SIZE, cols + CROP_SIZE), dtype=np.uint8)
        h, w = self._pad.shape[1:]
        self._w = w
        self._grid = (np.arange(CROP_SIZE)[:, None] * w + np.arange(CROP_SIZE)[None, :]).astype(np.intp)
        self._base = (np.arange(n) * h * w).astype(np.intp)

    def __call__(self, tty: np.ndarray, hero_row: np.ndarray, hero_col: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if tty.shape != (self.n, self.rows, self.cols):
            raise ValueError(f"tty: shape {tty.shape}, expected {(self.n, self.rows, self.cols)}")
        # int8 colours are 0..15: reinterpret, no conversion needed
        self._pad[:, CROP_HALF : CROP_HALF + self.rows, CROP_HALF : CROP_HALF + self.cols] = tty.view(np.uint8)
        # padded coordinates of the crop's top-left are (row - 6 + 6, col - 6 + 6)
        start = self._base + hero_row.astype(np.intp) * self._w + hero_col.astype(np.intp)
        idx = start[:, None, None] + self._grid
        if out is None:
            out = np.empty((self.n, CROP_SIZE, CROP_SIZE), dtype=np.uint8)
        np.take(self._pad.reshape(-1), idx, out=out.view(np.uint8))
        return out


def crop_around_hero(
    tty: np.ndarray, hero_row: np.ndarray, hero_col: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """12x12 crops of [N, 24, 80] tty arrays, top-left at (row - 6, col - 6), 0 off-screen."""
    if not (((hero_row >= 0) & (hero_row < tty.shape[1])).all() and ((hero_col >= 0) & (hero_col < tty.shape[2])).all()):
        raise ValueError("hero position outside the screen")
    return Cropper(tty.shape[0], tty.shape[1], tty.shape[2])(tty, hero_row, hero_col, out)


_BL_SCALE: Final = STATS_SCALE[:NUM_BLSTATS].copy()


def fill_stats(
    blstats: np.ndarray, extras: np.ndarray, skills: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """Normalized 35-vectors: blstats x scale, extras [N, 3] (27..29, scale 1), skill one-hot [30..34].

    Unclipped, as the method specifies (method.md 2.3).
    """
    np.multiply(blstats, _BL_SCALE, out=out[:, :NUM_BLSTATS], casting="unsafe")
    out[:, NUM_BLSTATS:SKILL_ONEHOT_OFFSET] = extras
    out[:, SKILL_ONEHOT_OFFSET:] = 0.0
    out[np.arange(out.shape[0]), SKILL_ONEHOT_OFFSET + skills.astype(np.intp)] = 1.0
    return out
