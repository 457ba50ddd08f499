"""HuBERT-large's GPU cost per Ditto audio window: the helper the Ditto figures leave out.

Ditto turns speech into HuBERT-large features (1024 wide, 50 per second) in
windows of 6480 samples at 16 kHz, one every 0.2 s of speech; its checkpoint
set holds them as an ONNX export with a fixed key/value cache, which cannot be
downloaded here. This runs HuBERT-large's architecture (``transformers``,
random weights, 316 M parameters) on the same windows on CUDA, in fp32 and in
fp16, one window at a time (online mode) and a whole clip's windows as one
batch (offline mode's ``wav2feat``).

    python -m benchmarks.gpu.hubert_windows --out report.json
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchmarks.gpu.cuda_timing import mean_seconds

WINDOW = 6480  # samples at 16 kHz: Ditto's (3, 5, 2) feature frames plus 80
PER_SECOND = 5  # windows per second of speech (one every 0.2 s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from transformers import HubertConfig, HubertModel

    # facebook/hubert-large-ll60k's shape
    config = HubertConfig(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        conv_bias=True,
    )
    began = time.perf_counter()
    model: Any = HubertModel(config)
    model = model.to("cuda").eval()
    torch.cuda.synchronize()
    record: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "build_seconds": time.perf_counter() - began,
    }
    torch.cuda.reset_peak_memory_stats()
    for dtype in (torch.float32, torch.float16):
        name = str(dtype).removeprefix("torch.")
        with (
            torch.inference_mode(),
            torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32),
        ):
            one = torch.randn(1, WINDOW, device="cuda")
            window = mean_seconds(partial(model, one), runs=20)
            clip = torch.randn(50, WINDOW, device="cuda")  # 10 s of speech, offline
            batch = mean_seconds(partial(model, clip), runs=5)
        record[name] = {
            "window_seconds": window,
            "online_seconds_per_speech_second": window * PER_SECOND,
            "offline_seconds_per_speech_second": batch / 10,
        }
    record["peak_gpu_memory_bytes"] = torch.cuda.max_memory_allocated()
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
