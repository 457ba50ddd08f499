"""Put-back on the GPU: each rendered crop warped into its portrait and blended in, batched.

Ditto renders a 512 x 512 crop around the face and puts it back into the
portrait (``core/atomic_components/putback.py``): the crop and a blend mask
(1 inside the middle 90 % of the crop, falling off linearly to 0 at its edges,
rounded at the corners) are warped into the portrait by the crop-to-portrait
affine transform ``M_c2o`` (``cv2.warpAffine``, bilinear, zeros outside), and
each pixel becomes ``mask * crop + (1 - mask) * portrait``, clipped and cut to
uint8. Ditto does that on the CPU, 1 to 2.2 ms of a core a frame at 512 x 512.

For a still portrait ``M_c2o`` never changes, so ``Backdrop`` works out once,
when the portrait is registered, the inverse transform (as ``affine_grid``'s
six numbers) and the warped mask; a batch of crops is then one ``affine_grid``,
one ``grid_sample`` and one blend on the GPU. It keeps the portrait (uint8) and
the mask (float) on the GPU: 1.75 MiB at 512 x 512. Differences from
Ditto's: OpenCV quantises sampling positions to 1/32 of a pixel, this samples
exactly (a level or so where the crop has edges), and the crop arrives as uint8
where Ditto blends the decoder's floats (under one level).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch

MASK_RATIO = 0.9  # the share of the crop, each way, that is kept whole


def blend_mask(width: int, height: int, ratio: float = MASK_RATIO) -> npt.NDArray[np.float32]:
    """(height, width) in [0, 1]: Ditto's put-back mask (its ``get_mask``, same values).

    1 over the middle ``ratio`` of each side; linear ramps from 0 at the border to 1 at
    that middle region along each edge; at the corners, 1 minus the distance from the
    inner corner on the same ramp scale (so the corners are rounded), floored at 0."""
    inner_w, inner_h = int(width * ratio), int(height * ratio)
    x1, y1 = (width - inner_w) // 2, (height - inner_h) // 2
    x2, y2 = x1 + inner_w, y1 + inner_h
    mask = np.ones((height, width), dtype=np.float32)

    def ramp(count: int, rising: bool) -> np.ndarray:
        return np.linspace(0, 1, count) if rising else np.linspace(1, 0, count)

    top, bottom = ramp(y1, True), ramp(height - y2, False)  # border to inner edge
    left, right = ramp(x1, True), ramp(width - x2, False)
    mask[:y1, x1:x2] = top[:, None]
    mask[y2:, x1:x2] = bottom[:, None]
    mask[y1:y2, :x1] = left[None, :]
    mask[y1:y2, x2:] = right[None, :]

    def corner(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        # distance from the inner corner, in ramp units (0 there, 1 a ramp's length away)
        distance = np.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2).astype(np.float32)
        rounded: np.ndarray = 1 - np.clip(distance, 0, 1)
        return rounded

    mask[:y1, :x1] = corner(ramp(y1, False), ramp(x1, False))
    mask[:y1, x2:] = corner(ramp(y1, False), ramp(width - x2, True))
    mask[y2:, :x1] = corner(ramp(height - y2, True), ramp(x1, False))
    mask[y2:, x2:] = corner(ramp(height - y2, True), ramp(width - x2, True))
    return mask


class Backdrop:
    """One registered portrait's put-back: its image and where each pixel samples the crop."""

    def __init__(
        self,
        portrait: npt.NDArray[np.uint8],
        crop_to_portrait: npt.NDArray[np.floating],
        *,
        crop_size: int = 512,
        device: torch.device | str = "cpu",
    ) -> None:
        """``portrait`` (H, W, 3) RGB uint8, Ditto's ``img_rgb_lst[0]``; ``crop_to_portrait``
        Ditto's ``M_c2o`` (3 x 3 or 2 x 3), crop pixels to portrait pixels."""
        import torch

        height, width = portrait.shape[:2]
        self.size = (height, width)
        self.crop_size = crop_size
        forward = np.eye(3, dtype=np.float64)
        forward[:2] = np.asarray(crop_to_portrait, dtype=np.float64)[:2]
        self.matrix = forward
        """(3, 3): crop pixels to portrait pixels."""
        inverse = np.linalg.inv(forward)  # portrait pixel -> crop pixel
        # The same map between grid_sample's normalised coordinates (align_corners=True:
        # pixel 0 is -1, the last pixel 1), as ``affine_grid`` takes it: a batch's grid is
        # made on the GPU from these six numbers, not kept per portrait.
        to_crop = _normalising(crop_size, crop_size)
        from_portrait = np.linalg.inv(_normalising(width, height))
        theta = (to_crop @ inverse @ from_portrait)[:2]
        self.theta = torch.as_tensor(theta, dtype=torch.float32, device=device)[None]
        """(1, 2, 3): portrait to crop, in normalised coordinates."""
        mask = torch.as_tensor(blend_mask(crop_size, crop_size), device=device)[None, None]
        warped = torch.nn.functional.grid_sample(
            mask, self._grid(1), mode="bilinear", padding_mode="zeros", align_corners=True
        )
        self.mask = warped.clamp(0, 1)[0].permute(1, 2, 0).contiguous()
        """(H, W, 1): the blend mask warped into the portrait."""
        self.image = torch.as_tensor(portrait, device=device)
        """(H, W, 3) uint8: the portrait."""

    def _grid(self, count: int) -> torch.Tensor:
        import torch

        height, width = self.size
        size = [count, 1, height, width]
        grid: torch.Tensor = torch.nn.functional.affine_grid(
            self.theta.expand(count, -1, -1), size, align_corners=True
        )
        return grid

    def paste(self, crops: torch.Tensor) -> torch.Tensor:
        """Crops (n, crop, crop, 3) uint8 into the portrait: (n, H, W, 3) uint8."""
        import torch

        count = crops.shape[0]
        source = crops.permute(0, 3, 1, 2).float()
        warped = torch.nn.functional.grid_sample(
            source,
            self._grid(count),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        ).permute(0, 2, 3, 1)
        blended = self.mask * warped + (1 - self.mask) * self.image.float()
        return blended.clamp(0, 255).to(torch.uint8)


def _normalising(width: int, height: int) -> np.ndarray:
    """Pixel coordinates to grid_sample's, with align_corners=True."""
    return np.array(
        [[2 / (width - 1), 0, -1], [0, 2 / (height - 1), -1], [0, 0, 1]], dtype=np.float64
    )
