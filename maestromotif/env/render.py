"""Render compact tty crops into the policy's image input, in torch.

A lookup table maps (colour, character) to a 3x6x6 RGB tile; rendering a
batch [B, 12, 12] of crops is one gather and one reshape, so the same code
runs on CPU or GPU with any batch size, and a batch renders exactly like its
rows one at a time (integer arithmetic only).

Glyph bitmaps are rasterized once, deterministically, from the DejaVu Sans
Mono font that ships inside matplotlib (no downloads): each character's
outline is sampled on an 8x8 grid per pixel and the covered fraction is the
pixel's intensity.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from maestromotif.env.compact import CROP_SIZE

GLYPH_PX = 6  # pixels per character side
IMAGE_SIZE = CROP_SIZE * GLYPH_PX  # 72
NUM_COLORS = 16
_SUPERSAMPLE = 8

# NetHack's 16 colours (CLR_BLACK .. CLR_WHITE). Black is drawn dark grey so
# black monsters and objects stay visible on the black background.
PALETTE = np.array(
    [
        (64, 64, 64),  # 0 black
        (170, 0, 0),  # 1 red
        (0, 170, 0),  # 2 green
        (170, 85, 0),  # 3 brown
        (0, 0, 170),  # 4 blue
        (170, 0, 170),  # 5 magenta
        (0, 170, 170),  # 6 cyan
        (170, 170, 170),  # 7 grey
        (85, 85, 85),  # 8 no colour
        (255, 85, 0),  # 9 orange
        (85, 255, 85),  # 10 bright green
        (255, 255, 85),  # 11 yellow
        (85, 85, 255),  # 12 bright blue
        (255, 85, 255),  # 13 bright magenta
        (85, 255, 255),  # 14 bright cyan
        (255, 255, 255),  # 15 white
    ],
    dtype=np.uint8,
)


def _font_path() -> str:
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSansMono.ttf")


@functools.lru_cache(maxsize=1)
def glyph_bitmaps() -> np.ndarray:
    """uint8 [256, 6, 6] intensity of every byte value; non-printable bytes are blank."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path
    from matplotlib.textpath import TextPath

    prop = FontProperties(fname=_font_path())
    size = 100.0
    # the character cell in font units: advance width x (descent .. ascent)
    x0, x1 = 0.0, 0.602 * size
    y0, y1 = -0.236 * size, 0.928 * size
    n = GLYPH_PX * _SUPERSAMPLE
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y1 - (np.arange(n) + 0.5) * (y1 - y0) / n  # image rows go down
    pts = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    out = np.zeros((256, GLYPH_PX, GLYPH_PX), dtype=np.uint8)
    for code in range(33, 127):  # printable ASCII; NetHack's tty map uses only these
        path = TextPath((0.0, 0.0), chr(code), size=size, prop=prop)
        inside = np.zeros(n * n, dtype=bool)
        # each closed contour separately, combined by parity: holes ("o", "@") stay empty
        for poly in path.to_polygons(closed_only=True):
            inside ^= Path(poly).contains_points(pts)
        cover = inside.reshape(GLYPH_PX, _SUPERSAMPLE, GLYPH_PX, _SUPERSAMPLE).mean(axis=(1, 3))
        out[code] = np.round(cover * 255.0).astype(np.uint8)
    return out


@functools.lru_cache(maxsize=1)
def tile_table() -> np.ndarray:
    """uint8 [16 * 256, 3, 6, 6]: RGB tile of (colour c, char ch) at index c * 256 + ch."""
    g = glyph_bitmaps().astype(np.uint32)  # [256, 6, 6]
    p = PALETTE.astype(np.uint32)  # [16, 3]
    tiles = (p[:, None, :, None, None] * g[None, :, None, :, :] + 127) // 255  # [16, 256, 3, 6, 6]
    return tiles.reshape(NUM_COLORS * 256, 3, GLYPH_PX, GLYPH_PX).astype(np.uint8)


class CropRenderer(torch.nn.Module):
    """[B, 12, 12] uint8 chars and colours -> [B, 3, 72, 72] uint8 images.

    Move it to a device like any module (``renderer.to("cuda")``); inputs are
    moved to the table's device.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", torch.from_numpy(tile_table().copy()), persistent=False)

    def forward(self, chars: torch.Tensor, colors: torch.Tensor) -> torch.Tensor:
        if chars.shape != colors.shape or chars.dim() != 3 or chars.shape[1:] != (CROP_SIZE, CROP_SIZE):
            raise ValueError(
                f"chars/colors: expected two [B, {CROP_SIZE}, {CROP_SIZE}] tensors, got {tuple(chars.shape)} and {tuple(colors.shape)}"
            )
        table: torch.Tensor = self.table  # type: ignore[assignment]
        dev = table.device
        idx = (colors.to(dev, torch.long) & (NUM_COLORS - 1)) * 256 + (chars.to(dev, torch.long) & 255)
        tiles = table[idx]  # [B, 12, 12, 3, 6, 6]
        b = tiles.shape[0]
        # (B, row, col, ch, y, x) -> (B, ch, row, y, col, x) -> (B, 3, 72, 72)
        return tiles.permute(0, 3, 1, 4, 2, 5).reshape(b, 3, IMAGE_SIZE, IMAGE_SIZE)


def render_numpy(chars: np.ndarray, colors: np.ndarray, renderer: CropRenderer | None = None) -> np.ndarray:
    """Convenience: render numpy crops on the CPU, returning a numpy array."""
    r = renderer or CropRenderer()
    with torch.no_grad():
        return r(torch.from_numpy(np.ascontiguousarray(chars)), torch.from_numpy(np.ascontiguousarray(colors))).numpy()


def render_reference(chars: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Slow, loop-based rendering of one [12, 12] crop (for tests): [3, 72, 72] uint8."""
    g = glyph_bitmaps()
    img = np.zeros((3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for r in range(CROP_SIZE):
        for c in range(CROP_SIZE):
            ch = int(chars[r, c]) & 255
            rgb = PALETTE[int(colors[r, c]) & 15]
            for y in range(GLYPH_PX):
                for x in range(GLYPH_PX):
                    for k in range(3):
                        img[k, r * GLYPH_PX + y, c * GLYPH_PX + x] = (int(rgb[k]) * int(g[ch, y, x]) + 127) // 255
    return img
