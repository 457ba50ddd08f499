"""From a frame's motion vector to the keypoints that drive the warp, on the GPU, batched.

Ditto turns each frame's 265-value motion (scale, pitch / yaw / roll as 66 bins
each, shift, 21 x 3 expression offsets) into driving keypoints with numpy, one
frame at a time (``core/atomic_components/motion_stitch.py``), then runs its
stitching network on them. ``PortraitMotion.drive`` does the same for a whole
window of one job at once, for the path Ditto takes for a still portrait with
its default options: motion relative to the first frame's (``relative_d``),
pose, shift and expression from the motion and scale from the portrait, lips
and eyes from the motion and the rest of the face from the portrait, the gaze
nudged by the head's turn, then the keypoint transform (rotation, expression,
scale, shift) and Ditto's stitching network. Options Ditto has beyond those
(blinks from a template, fades, per-frame pose offsets) are not taken here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

KEYPOINTS = 21
LIPS = (6, 12, 14, 17, 19, 20)
EYES = (11, 13, 15, 16, 18)
# The motion vector's layout (Ditto's ``_cvt_LP_motion_info``): scale - 1, pitch, yaw and
# roll bins, shift, expression.
SLICES = {
    "scale": slice(0, 1),
    "pitch": slice(1, 67),
    "yaw": slice(67, 133),
    "roll": slice(133, 199),
    "t": slice(199, 202),
    "exp": slice(202, 265),
}
MOTION_DIM = 265


def degrees(bins: torch.Tensor) -> torch.Tensor:
    """Ditto's 66 angle bins (logits) to degrees: the softmax-weighted bin, 3 degrees a bin."""
    import torch

    index = torch.arange(66, device=bins.device, dtype=bins.dtype)
    return (bins.softmax(dim=-1) * index).sum(dim=-1) * 3 - 97.5


def rotation(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3): Ditto's ``get_rotation_matrix`` (degrees in; (Rz Ry Rx) transposed)."""
    import torch

    x, y, z = (angle * (math.pi / 180) for angle in (pitch, yaw, roll))
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rot_x = torch.stack([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], -1)
    rot_y = torch.stack([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], -1)
    rot_z = torch.stack([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], -1)
    shape = (*x.shape, 3, 3)
    rot = rot_z.reshape(shape) @ rot_y.reshape(shape) @ rot_x.reshape(shape)
    return rot.transpose(-1, -2)


def transform(
    kp: torch.Tensor,
    *,
    pitch: torch.Tensor,
    yaw: torch.Tensor,
    roll: torch.Tensor,
    t: torch.Tensor,
    exp: torch.Tensor,
    scale: torch.Tensor,
) -> torch.Tensor:
    """Ditto's ``transform_keypoint``: s * (kp R + exp) + (tx, ty, 0); angles in bins."""
    rot = rotation(degrees(pitch), degrees(yaw), degrees(roll))
    count = exp.shape[0]
    points = kp.reshape(-1, KEYPOINTS, 3).expand(count, -1, -1) @ rot
    points = (points + exp.reshape(count, KEYPOINTS, 3)) * scale.reshape(count, 1, 1)
    shift = t.reshape(count, 1, 3).clone()
    shift[..., 2] = 0
    return points + shift


@dataclass(frozen=True)
class PortraitMotion:
    """A registered portrait's pose and keypoints, as the driving step needs them."""

    source: torch.Tensor
    """(265,): the portrait's own motion vector (Ditto's ``dic2arr`` without ``kp``)."""
    kp: torch.Tensor
    """(63,): its canonical keypoints."""
    x_s: torch.Tensor
    """(21, 3): its transformed keypoints."""
    pose: tuple[torch.Tensor, torch.Tensor]
    """Its yaw and pitch in degrees (0-d tensors)."""
    exp_from_motion: torch.Tensor
    """(63,): 1 where the expression follows the motion (lips, eyes), else 0."""

    @classmethod
    def of(cls, info: dict[str, Any], *, device: Any) -> PortraitMotion:
        """From Ditto's per-portrait ``x_s_info`` (arrays: scale (1, 1), pitch / yaw / roll
        (1, 66), t (1, 3), exp (1, 63), kp (1, 63))."""
        import torch

        def part(name: str) -> torch.Tensor:
            return torch.as_tensor(info[name], dtype=torch.float32, device=device).reshape(-1)

        source = torch.cat(
            [part("scale") - 1, part("pitch"), part("yaw"), part("roll"), part("t"), part("exp")]
        )
        kp = part("kp")
        x_s = transform(
            kp,
            pitch=part("pitch")[None],
            yaw=part("yaw")[None],
            roll=part("roll")[None],
            t=part("t")[None],
            exp=part("exp")[None],
            scale=part("scale")[None],
        )[0]
        mask = torch.zeros(KEYPOINTS, 3, device=device)
        mask[list(LIPS + EYES)] = 1
        pose = (degrees(part("yaw")), degrees(part("pitch")))
        return cls(source=source, kp=kp, x_s=x_s, pose=pose, exp_from_motion=mask.reshape(-1))

    def drive(self, motion: torch.Tensor, first: torch.Tensor, stitch: Any) -> torch.Tensor:
        """Driving keypoints (n, 21, 3) for ``motion`` (n, 265), relative to the job's first
        frame's motion ``first`` (265,); ``stitch`` is Ditto's ``StitchingNetwork``."""
        import torch

        mixed = self.source + (motion - first)
        mixed[:, SLICES["scale"]] = self.source[SLICES["scale"]]
        exp = mixed[:, SLICES["exp"]]
        portrait_exp = self.source[SLICES["exp"]]
        exp = exp * self.exp_from_motion + portrait_exp * (1 - self.exp_from_motion)
        # Gaze follows the head's turn (Ditto's ``_fix_gaze``).
        dx = (degrees(mixed[:, SLICES["yaw"]]) - self.pose[0]) * 0.26
        dy = (degrees(mixed[:, SLICES["pitch"]]) - self.pose[1]) * 0.28
        right = dx > 0
        exp = exp.clone()
        exp[:, 33] += dx * torch.where(right, 0.0007, 0.001)
        exp[:, 45] += dx * torch.where(right, 0.001, 0.0007)
        exp[:, 34] += dy * -0.001
        exp[:, 46] += dy * -0.001
        count = motion.shape[0]
        x_d = transform(
            self.kp,
            pitch=mixed[:, SLICES["pitch"]],
            yaw=mixed[:, SLICES["yaw"]],
            roll=mixed[:, SLICES["roll"]],
            t=mixed[:, SLICES["t"]],
            exp=exp,
            scale=mixed[:, SLICES["scale"]] + 1,
        )
        with torch.no_grad():
            stitched: torch.Tensor = stitch(self.x_s.expand(count, -1, -1), x_d)
        return stitched
