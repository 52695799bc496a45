"""Images: bring your own (a PNG or JPEG file -> a tensor the course's models accept), and
the one Gaussian blur the chapters share.

    x = read_image(open("cat.jpg", "rb").read(), size=(224, 224), channels=3)  # (1, 3, 224, 224)
    gaussian_blur(x, sigma=5.0)  # IG's blur baseline, LIME's, Meaningful Perturbation's

Uploaded files are untrusted, so the checks come first: only PNG and JPEG (by their first
bytes and by what Pillow finds), at most `MAX_BYTES` bytes and `MAX_PIXELS` pixels (which
also stops "decompression bombs", small files that expand to huge images). Every refusal is
a ValueError that says what was wrong and what is accepted.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["read_image", "gaussian_blur", "MAX_BYTES", "MAX_PIXELS"]

MAX_BYTES = 10 * 1024 * 1024  # 10 MB
MAX_PIXELS = 40_000_000  # 40 megapixels
_MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG"}  # MPO: a camera's multi-picture JPEG
_VALID = "a PNG or JPEG image (.png, .jpg, .jpeg)"


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Check the bytes and open them with Pillow (header only, nothing decoded yet)."""
    kind = next((k for magic, k in _MAGIC.items() if data.startswith(magic)), None)
    if kind is None:
        raise ValueError(f"this file is not {_VALID}: it starts with {data[:8]!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise ValueError(f"the image has too many pixels ({e}); at most {max_pixels:,} "
                         f"pixels are accepted") from None
    except UnidentifiedImageError:
        raise ValueError(f"the file starts like a {kind} but is damaged or not an image; "
                         f"give {_VALID}") from None
    except OSError as e:
        raise ValueError(f"the file starts like a {kind} but cannot be read ({e}); give "
                         f"{_VALID}") from None
    if _FORMATS.get(image.format) != kind:
        raise ValueError(f"the file starts like a {kind} but Pillow reads it as "
                         f"{image.format}; give {_VALID}")
    width, height = image.size
    if width * height > max_pixels:
        raise ValueError(f"the image is {width}x{height} = {width * height:,} pixels; at most "
                         f"{max_pixels:,} pixels are accepted")
    return image


def _convert(image: Image.Image, channels: int) -> Image.Image:
    """Any mode (palette, grey, 16-bit, with alpha) -> "RGB" or "L"; transparency on white."""
    if image.mode.startswith("I"):  # 16- or 32-bit grey: rescale to 8 bits
        a = np.asarray(image, dtype=np.float64)
        a = a / (65535.0 if a.max(initial=0) > 255 else 255.0)
        image = Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image.convert("RGB" if channels == 3 else "L")


def _crop_to_aspect(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The largest centred part of `image` with the aspect ratio of `size` (H, W)."""
    width, height = image.size
    keep_w = min(width, round(height * size[1] / size[0]))
    keep_h = min(height, round(width * size[0] / size[1]))
    left, top = (width - keep_w) // 2, (height - keep_h) // 2
    return image.crop((left, top, left + keep_w, top + keep_h))


def read_image(data: bytes, size: tuple[int, int] = (224, 224), channels: int = 3,
               max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Decode a PNG or JPEG file into a float tensor (1, channels, H, W) in [0, 1].

    size: (H, W) of the result: the image is centre-cropped to that aspect ratio and then
    resized (bicubic). channels: 3 (RGB) or 1 (grey). A camera's orientation tag is applied;
    transparent pixels are put on white. Refused (ValueError): anything but PNG / JPEG, files
    over `max_bytes`, images over `max_pixels`, damaged files.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"data must be the bytes of a file, got {type(data).__name__}")
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and s > 0 for s in size)):
        raise ValueError(f"size must be (height, width) in pixels, got {size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    if not data:
        raise ValueError(f"the file is empty; give {_VALID}")
    if len(data) > max_bytes:
        raise ValueError(f"the file is {len(data) / 2**20:.1f} MB; files up to "
                         f"{max_bytes / 2**20:.0f} MB are accepted")
    image = _open(data, max_pixels)
    try:
        image = ImageOps.exif_transpose(image)
        image = _convert(image, channels)
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"the image is damaged or truncated ({e}); give {_VALID}") from None
    image = _crop_to_aspect(image, size).resize(size[::-1], Image.Resampling.BICUBIC)
    a = np.asarray(image, dtype=np.float32) / 255.0
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(a))[None]


def gaussian_blur(x: torch.Tensor, sigma: float, border: str = "reflect") -> torch.Tensor:
    """Blur images (N, C, H, W) by a Gaussian of std `sigma` pixels, kernel +-3 sigma.

    border: "reflect" (the image mirrored, kernel cut at the image size) or "zeros" (black
    beyond the border, as TorchRay: a strong blur also darkens the image). Differentiable,
    one 1-D convolution per axis.
    """
    if border not in ("reflect", "zeros"):
        raise ValueError(f"border must be 'reflect' or 'zeros', got {border!r}")
    if sigma <= 0:
        return x
    radius = math.ceil(3 * sigma)
    if border == "reflect":
        radius = min(radius, min(x.shape[-2:]) - 1)
    if radius < 1:
        return x
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-taps ** 2 / (2 * sigma ** 2))
    kernel = (kernel / kernel.sum()).repeat(x.shape[1], 1, 1, 1)  # (C, 1, 1, 2r + 1)
    mode = "reflect" if border == "reflect" else "constant"
    x = F.pad(x, (radius, radius, radius, radius), mode=mode)
    x = F.conv2d(x, kernel, groups=x.shape[1])  # along the width
    return F.conv2d(x, kernel.transpose(2, 3), groups=x.shape[1])  # along the height
