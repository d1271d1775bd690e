"""Image quality metrics as the deraining literature reports them.

PSNR and SSIM on the Y channel of BT.601 YCbCr (MATLAB ``rgb2ycbcr``: Y in [16, 235])
and on RGB. SSIM is Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, computed with OpenCV filters; tests check it against
scikit-image's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``.

Two more numbers catch what PSNR hides (v2): the brightness bias (mean of output
minus reference over all RGB values, in 8-bit grey levels: negative = darker) and
the detail ratio (Laplacian energy of the output's Y over the reference's: < 1 =
smeared texture, > 1 = invented or left-over detail such as streaks).
"""

from __future__ import annotations

import cv2
import numpy as np


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW float64 BT.601 luma in [16, 235]."""
    x = rgb.astype(np.float64) / 255.0
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def _ssim_channel(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a**2
    sbb = blur(b * b) - mu_b**2
    sab = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * sab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2)
    pad = 5  # drop the border where the window leaves the image, as scikit-image does
    return float((num / den)[pad:-pad, pad:-pad].mean())


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """SSIM of two HxW or HxWxC arrays (channels averaged)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    if a.ndim == 2:
        return _ssim_channel(a, b, data_range)
    return float(np.mean([_ssim_channel(a[..., c], b[..., c], data_range) for c in range(a.shape[2])]))


def laplacian_energy(y: np.ndarray) -> float:
    """Mean squared Laplacian (3x3) of a plane: its fine-detail energy."""
    return float(np.mean(cv2.Laplacian(y.astype(np.float64), cv2.CV_64F) ** 2))


def brightness_bias(out: np.ndarray, ref: np.ndarray) -> float:
    """Mean of ``out - ref`` over all values, in grey levels of the arrays' scale."""
    return float(np.mean(out.astype(np.float64) - ref.astype(np.float64)))


def detail_ratio(out: np.ndarray, ref: np.ndarray) -> float:
    """Laplacian energy of ``out``'s Y over ``ref``'s (two HxWx3 uint8 RGB images)."""
    return laplacian_energy(rgb_to_y(out)) / max(laplacian_energy(rgb_to_y(ref)), 1e-12)


def image_scores(out: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """PSNR/SSIM on Y and RGB, brightness bias and detail ratio of two HxWx3 uint8 RGB images."""
    yo, yr = rgb_to_y(out), rgb_to_y(ref)
    return {"psnr_y": psnr(yo, yr), "ssim_y": ssim(yo, yr),
            "psnr_rgb": psnr(out, ref), "ssim_rgb": ssim(out, ref),
            "bias": brightness_bias(out, ref), "detail": detail_ratio(out, ref)}
