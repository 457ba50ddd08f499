"""One copy of Ditto's networks, loaded from the model volume with Ditto's own loader.

The engine drives Ditto's network modules directly rather than through its
numpy wrappers, so it loads the modules themselves: Ditto's code from
``MODEL_DIR/ditto/code`` (put on ``sys.path``, as the adapter does), the
PyTorch checkpoints from ``MODEL_DIR/ditto/checkpoints/ditto_pytorch/models``
through Ditto's ``core.utils.load_model.load_model`` (which builds each class
and reads its checkpoint layout), LMDM's sizes from Ditto's config pickle. The
capture stand-ins (``capture.apply``) go in as the modules load.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avatar_runtime.engines.ditto_batched import capture
from avatar_runtime.engines.model_volume import DITTO_CHECKPOINTS_DIR, DITTO_CODE_DIR

CONFIG = "ditto_cfg/v0.4_hubert_cfg_pytorch.pkl"
MODELS = "ditto_pytorch"


@dataclass
class DittoNetworks:
    """Ditto's modules, on one device, in eval mode."""

    lmdm: Any
    """``LMDM`` (the diffusion wrapper module; its denoiser is ``lmdm.model``)."""
    stitch: Any
    """``StitchingNetwork``."""
    warp: Any
    """``WarpingNetwork``."""
    decoder: Any
    """``SPADEDecoder``."""
    undo: Callable[[], None]
    """Puts Ditto's own capture-hostile helpers back (for tests)."""


def _lmdm_sizes(root: Path) -> dict[str, int]:
    path = root / CONFIG
    if not path.exists():
        return {}
    with path.open("rb") as f:
        cfg = pickle.load(f)  # noqa: S301 - the volume's own config, as Ditto reads it
    a2m = cfg.get("audio2motion_cfg", {})
    keys = ("motion_feat_dim", "audio_feat_dim", "seq_frames")
    return {k: int(a2m[k]) for k in keys if k in a2m}


def load(model_dir: Path, *, device: str = "cuda") -> DittoNetworks:
    """Ditto's four networks that make frames from motion and audio condition, each built
    by Ditto's loader from its checkpoint on ``model_dir``."""
    code = str(model_dir / DITTO_CODE_DIR)
    if code not in sys.path:
        sys.path.insert(0, code)
    undo = capture.apply(capture.DittoModules.imported())
    loader = importlib.import_module("core.utils.load_model")
    root = model_dir / DITTO_CHECKPOINTS_DIR
    models = root / MODELS / "models"

    def build(file: str, module: str, **kwargs: Any) -> Any:
        model, kind = loader.load_model(
            str(models / file), device=device, module_name=module, **kwargs
        )
        if kind != "pytorch":
            raise RuntimeError(f"{file}: Ditto loaded a {kind} model, not PyTorch")
        return model.eval()

    lmdm = build("lmdm_v0.4_hubert.pth", "LMDM", **_lmdm_sizes(root))
    lmdm.device = device  # Ditto's loader builds LMDM for its default device ("cuda")
    return DittoNetworks(
        lmdm=lmdm,
        stitch=build("stitch_network.pth", "StitchingNetwork"),
        warp=build("warp_network.pth", "WarpingNetwork"),
        decoder=build("decoder.pth", "SPADEDecoder"),
        undo=undo,
    )
