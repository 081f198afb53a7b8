"""The SSIM that EmoEditor's IEI uses to judge structure preservation (official ``utils.cal_ssim``), re-implemented.

Definition, step by step (SSIM implementations disagree a lot, so this one is pinned to the published critic):

1. float image -> uint8 by TRUNCATION: x*255 (in the image's own dtype, so a float16 edit rounds first), clamp to
   [0, 255], cast (as torch ``.byte()``).
2. RGB -> grey as OpenCV's ``cvtColor(COLOR_RGB2GRAY)`` does for 8-bit images: 15-bit fixed point,
   (9798 R + 19235 G + 3735 B + 2^14) >> 15, i.e. 0.299/0.587/0.114 rounded to multiples of 2^-15 and the result
   rounded half up. (The older 14-bit table 4899/9617/1868 differs in ~0.05% of pixels and does not match.)
3. skimage ``structural_similarity(win_size=51)`` defaults: uniform 51x51 window, data_range 255 (uint8),
   K1 0.01, K2 0.03, sample covariance (N/(N-1)), float64; the SSIM map is averaged after cropping 25 px per border.

Because only windows lying entirely inside the image survive the crop, the border mode of the filter never matters,
and the window sums are computed exactly with integer summed-area tables.
"""

from __future__ import annotations

import numpy as np
import torch

WIN_SIZE = 51
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0
_GRAY_COEFFS = (9798, 19235, 3735)  # OpenCV R2Y, G2Y, B2Y for 8-bit images, scaled by 2^15
_GRAY_SHIFT = 15


def to_uint8_truncate(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8 array of the same layout by truncation ([EE test.py]'s mul(255).clamp().byte()).

    The multiply happens in the image's own floating dtype; uint8 input is returned unchanged.
    """
    tensor = torch.as_tensor(image)
    if tensor.dtype == torch.uint8:
        return tensor.cpu().numpy()
    if not tensor.is_floating_point():
        raise ValueError(f"expected a float image in [0, 1] or uint8, got dtype {tensor.dtype}")
    return tensor.detach().mul(255).clamp(0, 255).to(torch.uint8).cpu().numpy()


def rgb_to_gray_u8(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 grey, bit-exact with OpenCV's COLOR_RGB2GRAY."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    wide = rgb.astype(np.int32)
    cr, cg, cb = _GRAY_COEFFS
    gray = (wide[..., 0] * cr + wide[..., 1] * cg + wide[..., 2] * cb + (1 << (_GRAY_SHIFT - 1))) >> _GRAY_SHIFT
    return gray.astype(np.uint8)


def _window_sums(values: np.ndarray, win: int) -> np.ndarray:
    """Sums over every win x win window lying fully inside ``values`` (int64, exact)."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = values.cumsum(0).cumsum(1)
    return table[win:, win:] - table[:-win, win:] - table[win:, :-win] + table[:-win, :-win]


def ssim_gray(gray_a: np.ndarray, gray_b: np.ndarray, win_size: int = WIN_SIZE) -> float:
    """skimage ``structural_similarity(a, b, win_size=win_size)`` for two uint8 grey images (mean SSIM)."""
    if gray_a.shape != gray_b.shape or gray_a.ndim != 2:
        raise ValueError(f"need two grey images of the same (H, W) shape, got {gray_a.shape} and {gray_b.shape}")
    if gray_a.dtype != np.uint8 or gray_b.dtype != np.uint8:
        raise ValueError(f"need uint8 grey images, got {gray_a.dtype} and {gray_b.dtype}")
    if win_size < 3 or win_size % 2 == 0 or min(gray_a.shape) < win_size:
        raise ValueError(f"win_size must be odd, >= 3 and fit the image {gray_a.shape}, got {win_size}")
    a = gray_a.astype(np.int64)
    b = gray_b.astype(np.int64)
    n = win_size * win_size
    mean_a, mean_b, mean_aa, mean_bb, mean_ab = (
        _window_sums(v, win_size).astype(np.float64) / n for v in (a, b, a * a, b * b, a * b))
    cov_norm = n / (n - 1.0)  # sample covariance, skimage's default
    var_a = cov_norm * (mean_aa - mean_a * mean_a)
    var_b = cov_norm * (mean_bb - mean_b * mean_b)
    cov_ab = cov_norm * (mean_ab - mean_a * mean_b)
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * mean_a * mean_b + c1) * (2 * cov_ab + c2)
                / ((mean_a * mean_a + mean_b * mean_b + c1) * (var_a + var_b + c2)))
    return float(ssim_map.mean(dtype=np.float64))


def _as_gray_u8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H, W, 3) / (1, H, W, 3) RGB or (H, W) grey, float in [0, 1] or uint8 -> (H, W) uint8 grey."""
    u8 = to_uint8_truncate(image)
    if u8.ndim == 4 and u8.shape[0] == 1:
        u8 = u8[0]
    if u8.ndim == 3 and u8.shape[2] == 3:
        return rgb_to_gray_u8(u8)
    if u8.ndim == 2:
        return u8  # already grey, as cal_ssim's else-branch
    raise ValueError(f"expected an (H, W, 3) RGB or (H, W) grey image (channels last), got shape {u8.shape}")


def critic_ssim(source: torch.Tensor | np.ndarray, edited: torch.Tensor | np.ndarray,
                win_size: int = WIN_SIZE) -> float:
    """SSIM between two channels-last images, exactly as EmoEditor's IEI critic computes it.

    Each image is (H, W, 3) or (1, H, W, 3) (ComfyUI IMAGE layout), float in [0, 1] (any float dtype, truncated to
    uint8 in that dtype) or already uint8. Official sizes are 224x224; any size >= ``win_size`` works.
    """
    return ssim_gray(_as_gray_u8(source), _as_gray_u8(edited), win_size)
