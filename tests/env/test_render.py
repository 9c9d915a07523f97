"""The torch renderer: batch == one at a time == slow reference; shapes; errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maestromotif.env.render import (
    IMAGE_SIZE,
    PALETTE,
    CropRenderer,
    glyph_bitmaps,
    render_numpy,
    render_reference,
)
from maestromotif.env.vec import VecEnv


@pytest.fixture(scope="module")
def crops() -> tuple[np.ndarray, np.ndarray]:
    """Real crops from a few games plus random noise crops."""
    with VecEnv([1, 2, 3]) as v:
        obs = v.reset()
        real_c, real_k = obs["tty_chars"].copy(), obs["tty_colors"].copy()
    rng = np.random.default_rng(0)
    noise_c = rng.integers(0, 256, size=(3, 12, 12), dtype=np.uint8)
    noise_k = rng.integers(0, 16, size=(3, 12, 12), dtype=np.uint8)
    return np.concatenate([real_c, noise_c]), np.concatenate([real_k, noise_k])


def test_glyphs_are_distinct_and_blank_for_space() -> None:
    g = glyph_bitmaps()
    assert g.shape == (256, 6, 6) and g.dtype == np.uint8
    assert not g[ord(" ")].any() and not g[0].any()
    printable = {g[c].tobytes() for c in range(33, 127)}
    assert len(printable) > 85  # nearly all printable characters differ at 6x6
    assert g[ord("@")].sum() > g[ord(".")].sum() > 0


def test_batch_equals_one_at_a_time_and_reference(crops: tuple[np.ndarray, np.ndarray]) -> None:
    chars, colors = crops
    r = CropRenderer()
    batch = render_numpy(chars, colors, r)
    assert batch.shape == (len(chars), 3, IMAGE_SIZE, IMAGE_SIZE) and batch.dtype == np.uint8
    for i in range(len(chars)):
        one = render_numpy(chars[i : i + 1], colors[i : i + 1], r)[0]
        np.testing.assert_array_equal(one, batch[i])
        np.testing.assert_array_equal(render_reference(chars[i], colors[i]), batch[i])


def test_hero_tile_is_white_at_centre(crops: tuple[np.ndarray, np.ndarray]) -> None:
    chars, colors = crops
    img = render_numpy(chars[:1], colors[:1])[0]
    tile = img[:, 36:42, 36:42]  # crop cell (6, 6)
    assert tile.any()
    # the hero is drawn in its tty colour: every lit pixel is a multiple of that colour
    colour = PALETTE[colors[0, 6, 6] & 15].astype(int)
    lit = tile.reshape(3, -1)[:, tile.reshape(3, -1).sum(0) > 0]
    ratios = lit / np.maximum(colour[:, None], 1)
    assert np.allclose(ratios[colour > 0], ratios[colour > 0][0], atol=0.02)


def test_off_screen_is_black() -> None:
    chars = np.zeros((1, 12, 12), dtype=np.uint8)
    colors = np.full((1, 12, 12), 7, dtype=np.uint8)
    assert not render_numpy(chars, colors).any()


def test_bad_shapes_are_rejected() -> None:
    r = CropRenderer()
    with pytest.raises(ValueError, match="chars/colors"):
        r(torch.zeros(2, 11, 12, dtype=torch.uint8), torch.zeros(2, 11, 12, dtype=torch.uint8))
    with pytest.raises(ValueError, match="chars/colors"):
        r(torch.zeros(2, 12, 12, dtype=torch.uint8), torch.zeros(3, 12, 12, dtype=torch.uint8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu(crops: tuple[np.ndarray, np.ndarray]) -> None:
    chars, colors = (torch.from_numpy(a) for a in crops)
    cpu = CropRenderer()(chars, colors)
    gpu = CropRenderer().to("cuda")(chars.cuda(), colors.cuda()).cpu()
    assert torch.equal(cpu, gpu)
