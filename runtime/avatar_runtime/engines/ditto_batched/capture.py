"""Device-side stand-ins for the few Ditto helpers that CUDA graph capture refuses.

Ditto's warping network builds small tensors on the CPU and copies them to the
GPU on every call: ``make_coordinate_grid`` (``core/models/modules/util.py``)
builds ``torch.arange`` on the CPU and moves it, and the dense-motion network's
``create_heatmap_representations`` does the same with a ``torch.zeros``. Graph
capture stops at the first such copy ("Cannot copy between CPU and CUDA tensors
during CUDA graph capture"), and eagerly they cost a host-to-device copy each.
Folding LMDM's guided and unguided passes into one batch needs its dropout-mask
helper (``prob_mask_like``) to give a mask per sample, where Ditto's gives one
value for the whole batch.

Ditto's mounted code is never edited: ``apply`` swaps these functions into the
loaded modules' namespaces (and the one method onto its class) when the engine
loads, and gives back an undo. The replacements compute the same values,
created on the device of their inputs (a test compares them with Ditto's own).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def coordinate_grid(
    spatial_size: tuple[int, int, int], ref: torch.Tensor, **_: Any
) -> torch.Tensor:
    """Ditto's identity grid over (depth, height, width) in [-1, 1], last axis (x, y, z),
    made on ``ref``'s device in its dtype."""
    import torch

    d, h, w = spatial_size
    x = torch.arange(w, device=ref.device).to(ref.dtype)
    y = torch.arange(h, device=ref.device).to(ref.dtype)
    z = torch.arange(d, device=ref.device).to(ref.dtype)
    x = 2 * (x / (w - 1)) - 1
    y = 2 * (y / (h - 1)) - 1
    z = 2 * (z / (d - 1)) - 1
    xx = x.view(1, 1, -1).expand(d, h, w)
    yy = y.view(1, -1, 1).expand(d, h, w)
    zz = z.view(-1, 1, 1).expand(d, h, w)
    return torch.stack([xx, yy, zz], dim=3)


def heatmap_method(kp2gaussian: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """A ``create_heatmap_representations`` whose background channel is made on the device,
    built around Ditto's own ``kp2gaussian``."""

    def create_heatmap_representations(
        self: Any, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> torch.Tensor:
        import torch

        spatial_size = feature.shape[3:]
        driving = kp2gaussian(kp_driving, spatial_size=spatial_size, kp_variance=0.01)
        source = kp2gaussian(kp_source, spatial_size=spatial_size, kp_variance=0.01)
        heatmap = driving - source
        background = heatmap.new_zeros((heatmap.shape[0], 1, *spatial_size))
        return torch.cat([background, heatmap], dim=1).unsqueeze(2)

    return create_heatmap_representations


def per_sample_mask(original: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``prob_mask_like`` that also takes a tensor of keep-probabilities, one per sample,
    each 0 or 1 (how the folded guidance batch asks for "drop the condition here, keep it
    there"); plain numbers go to Ditto's own helper unchanged."""

    def prob_mask_like(shape: tuple[int, ...], prob: Any, device: Any) -> torch.Tensor:
        import torch

        if isinstance(prob, torch.Tensor):
            return (prob >= 0.5).to(device=device).reshape(shape)
        return original(shape, prob, device)

    return prob_mask_like


@dataclass(frozen=True)
class DittoModules:
    """The three of Ditto's modules the stand-ins go into, as imported from the volume
    (``core.models.modules.util``, ``...dense_motion``, ``...lmdm_modules.model``)."""

    util: Any
    dense_motion: Any
    lmdm_model: Any

    @classmethod
    def imported(cls) -> DittoModules:
        """Ditto's modules, once its code folder is on ``sys.path``."""
        import importlib

        return cls(
            util=importlib.import_module("core.models.modules.util"),
            dense_motion=importlib.import_module("core.models.modules.dense_motion"),
            lmdm_model=importlib.import_module("core.models.modules.lmdm_modules.model"),
        )


def apply(modules: DittoModules) -> Callable[[], None]:
    """Put the stand-ins in place; the returned function puts Ditto's own back."""
    network = modules.dense_motion.DenseMotionNetwork
    saved: list[tuple[Any, str, Any]] = [
        (modules.util, "make_coordinate_grid", modules.util.make_coordinate_grid),
        (modules.dense_motion, "make_coordinate_grid", modules.dense_motion.make_coordinate_grid),
        (network, "create_heatmap_representations", network.create_heatmap_representations),
        (modules.lmdm_model, "prob_mask_like", modules.lmdm_model.prob_mask_like),
    ]
    if getattr(modules.lmdm_model.prob_mask_like, "_avatar_per_sample", False):
        return lambda: None  # applied already (a second engine in the process)
    mask = per_sample_mask(modules.lmdm_model.prob_mask_like)
    mask._avatar_per_sample = True  # type: ignore[attr-defined]
    modules.util.make_coordinate_grid = coordinate_grid
    modules.dense_motion.make_coordinate_grid = coordinate_grid
    network.create_heatmap_representations = heatmap_method(modules.dense_motion.kp2gaussian)
    modules.lmdm_model.prob_mask_like = mask

    def undo() -> None:
        for owner, name, value in saved:
            setattr(owner, name, value)

    return undo
