"""Ditto's GPU cost, from its real network code with random weights (no checkpoints here).

Ditto's code is fetched from its public repository into a git-ignored folder
(``--ditto-code``; never committed) and its networks are built with the
arguments its loader uses, random weights, on CUDA, in fp16 autocast as Ditto's
own wrappers run them: per frame, the warping network and the SPADE decoder;
per 80-frame window, the LMDM motion diffusion (50 DDIM steps). A second of
video is 25 frames plus 25/70 of a window (windows overlap by 10 frames).

    python -m benchmarks.gpu.ditto_networks --ditto-code .fetched/ditto --out result.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.gpu.cuda_timing import mean_seconds

FPS, WINDOW, OVERLAP, STEPS = 25, 80, 10, 50


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ditto-code", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(args.ditto_code.resolve()))
    modules = importlib.import_module("core.models.modules")
    device = "cuda"
    torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    warp = modules.WarpingNetwork().to(device).eval()
    decoder = modules.SPADEDecoder().to(device).eval()
    lmdm = modules.LMDM(device=device).to(device).eval()
    torch.cuda.synchronize()
    load = time.perf_counter() - began

    record: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        per_batch = {}
        for batch in (1, 4, 16):
            feature = torch.randn(batch, 32, 16, 64, 64, device=device)
            kp_s = torch.randn(batch, 21, 3, device=device)
            kp_d = torch.randn(batch, 21, 3, device=device)

            def frame(f: Any = feature, s: Any = kp_s, d: Any = kp_d) -> Any:
                return decoder(warp(f, s, d))

            per_batch[batch] = mean_seconds(frame) / batch
        kp_cond = torch.randn(1, 265, device=device)
        aud_cond = torch.randn(1, WINDOW, 1024 + 35, device=device)
        lmdm.setup(STEPS)
        window = mean_seconds(lambda: lmdm.ddim_sample(kp_cond, aud_cond, STEPS), runs=3)
    per_second = FPS * per_batch[1] + FPS / (WINDOW - OVERLAP) * window
    record.update(
        {
            "load_seconds": load,
            "frame_seconds_by_batch": per_batch,
            "lmdm_window_seconds": window,
            "seconds_per_video_second": per_second,
            "realtime_factor": per_second,
            "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated(),
            "parameters": {
                name: sum(p.numel() for p in m.parameters())
                for name, m in (("warp", warp), ("decoder", decoder), ("lmdm", lmdm))
            },
        }
    )
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
