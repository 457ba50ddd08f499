"""Whisper's GPU cost, measured through its architecture in torch (``transformers``).

faster-whisper (CTranslate2) is what the runtime uses; on the device machine
it cannot reach the GPU (its wheels need CUDA 12's libcublas, the device has
CUDA 13), so this measures the same network, large-v3's dimensions with random
weights, in fp16 on CUDA: the encoder over 30 s of audio and the decoder for a
fixed number of tokens (random weights never stop on their own). Run on the
device machine; prints and writes a JSON record.

    python -m benchmarks.gpu.whisper_transformers --out result.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

SECONDS = 30.0
TOKENS = 120  # about what 30 s of speech transcribes to


def large_v3() -> WhisperConfig:
    return WhisperConfig(
        vocab_size=51866, num_mel_bins=128, d_model=1280, encoder_layers=32,
        decoder_layers=32, encoder_attention_heads=20, decoder_attention_heads=20,
        encoder_ffn_dim=5120, decoder_ffn_dim=5120, max_source_positions=1500,
        max_target_positions=448, decoder_start_token_id=50258, eos_token_id=50257,
        pad_token_id=50257, bos_token_id=50257,
    )  # fmt: skip


def measure(batch: int) -> dict[str, Any]:
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    model = WhisperForConditionalGeneration(large_v3()).half().cuda().eval()
    torch.cuda.synchronize()
    load = time.perf_counter() - started
    rate = 16_000
    t = np.arange(int(SECONDS * rate)) / rate
    wave = (0.1 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    features = (
        WhisperFeatureExtractor(feature_size=128)(
            [wave] * batch, sampling_rate=rate, return_tensors="pt"
        )
        .input_features.half()
        .cuda()
    )
    runs = []
    with torch.inference_mode():
        for _ in range(3):
            torch.cuda.synchronize()
            began = time.perf_counter()
            model.generate(features, max_new_tokens=TOKENS, min_new_tokens=TOKENS,
                           do_sample=False)  # fmt: skip
            torch.cuda.synchronize()
            runs.append(time.perf_counter() - began)
    best = min(runs[1:])  # the first run warms kernels up
    return {
        "batch": batch,
        "load_seconds": load,
        "seconds_per_batch": best,
        "realtime_factor": best / (SECONDS * batch),
        "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = [measure(b) for b in (1, 4)]
    record = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "audio_seconds": SECONDS,
        "tokens": TOKENS,
        "runs": results,
    }
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
