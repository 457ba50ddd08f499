"""Ditto's 7 x 7 x 7 dense-motion mask convolution: cuDNN in fp16 against FFTs in fp32.

The profile (``ditto_profile``) found one cuDNN kernel taking 29 % of the
renderer's GPU time: by its size, the dense-motion network's ``mask``
(142 -> 22 channels, 7 x 7 x 7, over 16 x 64 x 64). This measures, per batch
size, that convolution as Ditto runs it (fp16 autocast, cuDNN; also
channels-last) against ``spectral.SpectralConv3d`` (FFTs in fp32), eager and
inside ``torch.compile`` + a CUDA graph, with the FFT's parts timed apart and
each one's error against an fp64 convolution. Then, where ``--model-dir``
builds a Ditto volume (random weights), warp + decode with Ditto's own
networks, cuDNN against FFTs: how far apart their frames are, in 8-bit levels.

    python -m benchmarks.gpu.mask_conv --out mask-conv.json [--batches 1,8,16] \
        [--ditto-code .fetched/ditto --model-dir /tmp/m]
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHANNELS, OUTPUTS, KERNEL, SPATIAL = 142, 22, 7, (16, 64, 64)


def _gpu_ms(fn: Callable[[], Any], runs: int = 20) -> float:
    """Median GPU milliseconds of ``fn`` over ``runs`` calls (CUDA events), after warming."""
    import torch

    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(statistics.median(times))


def _graphed(fn: Callable[[], Any]) -> Callable[[], Any]:
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def _error(out: Any, ref: Any) -> dict[str, float]:
    diff = (out.double() - ref).abs()
    return {
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "ref_std": float(ref.std()),
    }


def op_level(batches: list[int]) -> dict[str, Any]:
    import torch

    from avatar_runtime.engines.ditto_batched import spectral

    torch.manual_seed(0)
    conv = torch.nn.Conv3d(CHANNELS, OUTPUTS, KERNEL, padding=KERNEL // 2).cuda().eval()
    fft = spectral.spectral_conv3d_class()(conv, SPATIAL).cuda()
    out: dict[str, Any] = {
        "fft_sizes": fft.sizes,
        "spectrum_bytes": fft.spectrum.numel() * fft.spectrum.element_size(),
        "by_batch": {},
    }
    op = spectral.operator()
    with torch.no_grad():
        for batch in batches:
            x = torch.randn(batch, CHANNELS, *SPATIAL, device="cuda").half()
            x_last = x.contiguous(memory_format=torch.channels_last_3d)
            conv_last = copy.deepcopy(conv).to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]

            def cudnn(x: Any = x, m: Any = conv) -> Any:
                with torch.autocast("cuda", dtype=torch.float16):
                    return m(x)

            def cudnn_last(x: Any = x_last, m: Any = conv_last) -> Any:
                with torch.autocast("cuda", dtype=torch.float16):
                    return m(x)

            row: dict[str, Any] = {
                "cudnn_fp16_ms": _gpu_ms(cudnn),
                "cudnn_fp16_channels_last_ms": _gpu_ms(cudnn_last),
                "fft_eager_ms": _gpu_ms(functools.partial(fft, x)),  # at spectral.VOLUMES
            }
            xf = x.float()
            spec = torch.fft.rfftn(xf, s=fft.sizes, dim=(-3, -2, -1))
            row["fft_parts_ms"] = {
                "rfftn_all": _gpu_ms(
                    functools.partial(torch.fft.rfftn, xf, s=fft.sizes, dim=(-3, -2, -1))
                ),
                "permute_bmm_all": _gpu_ms(
                    functools.partial(
                        torch.bmm, spec.reshape(batch, CHANNELS, -1).permute(2, 0, 1), fft.spectrum
                    )
                ),
            }
            mixed = torch.bmm(spec.reshape(batch, CHANNELS, -1).permute(2, 0, 1), fft.spectrum)
            freq = spec.shape[2:]
            mixed = mixed.permute(1, 2, 0).reshape(batch, OUTPUTS, *freq).contiguous()
            row["fft_parts_ms"]["irfftn_all"] = _gpu_ms(
                functools.partial(torch.fft.irfftn, mixed, s=fft.sizes, dim=(-3, -2, -1))
            )
            # How many volumes go through the FFT at once: time and intermediates' peak.
            row["fft_volumes"] = {}
            for volumes in (0, 512, 256, 128):
                torch.cuda.synchronize()
                before = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
                op(x, fft.spectrum, fft.bias, fft.sizes, volumes)
                torch.cuda.synchronize()
                peak = torch.cuda.max_memory_allocated() - before
                row["fft_volumes"][str(volumes)] = {
                    "ms": _gpu_ms(
                        functools.partial(op, x, fft.spectrum, fft.bias, fft.sizes, volumes)
                    ),
                    "intermediate_peak_bytes": peak,
                }
            # Inside a compiled function (an opaque custom op there) and a CUDA graph.
            compiled = torch.compile(lambda x: torch.softmax(fft(x), dim=1), dynamic=False)
            compiled_cudnn = torch.compile(lambda x: torch.softmax(cudnn(x), dim=1), dynamic=False)
            row["fft_compiled_graphed_ms"] = _gpu_ms(_graphed(functools.partial(compiled, x)))
            graphed_cudnn = _graphed(functools.partial(compiled_cudnn, x))
            row["cudnn_compiled_graphed_ms"] = _gpu_ms(graphed_cudnn)
            if batch == batches[0]:
                ref = copy.deepcopy(conv).double()(x.double())
                row["error_vs_fp64"] = {
                    "cudnn_fp16": _error(cudnn(), ref),
                    "fft_fp32": _error(fft(x), ref),
                    "graphed_softmax_fft_vs_cudnn": _error(compiled(x), torch.softmax(ref, dim=1)),
                }
                del ref
            out["by_batch"][str(batch)] = row
            print(batch, json.dumps(row), flush=True)
            torch.cuda.empty_cache()
    out["peak_gpu_memory_bytes"] = torch.cuda.max_memory_allocated()
    return out


def with_ditto(model_dir: Path, ditto_code: Path, batch: int) -> dict[str, Any]:
    """Warp + decode with Ditto's networks (random weights), cuDNN mask against FFT mask."""
    import torch

    from avatar_runtime.engines.ditto_batched import networks, spectral
    from avatar_runtime.engines.ditto_batched.frames import FrameRenderer
    from benchmarks.gpu import ditto_volume

    ditto_volume.build(model_dir, ditto_code, device="cuda")
    nets = networks.load(model_dir, device="cuda")
    torch.manual_seed(1)
    feature = torch.randn(batch, 32, *SPATIAL, device="cuda")
    kp_source = torch.randn(batch, 21, 3, device="cuda") * 0.1
    kp_driving = kp_source + torch.randn(batch, 21, 3, device="cuda") * 0.02
    renderer = FrameRenderer(nets.warp, nets.decoder, buckets=(batch,))
    with torch.no_grad():
        cudnn = renderer.render(feature, kp_source, kp_driving)
        with torch.autocast("cuda", enabled=False):
            full = nets.decoder(nets.warp(feature, kp_source, kp_driving))
        reference = (full.float().permute(0, 2, 3, 1).clamp(0, 1) * 255).to(torch.uint8)
        cudnn_ms = _gpu_ms(lambda: renderer.render(feature, kp_source, kp_driving), runs=10)
        spectral.swap_mask(nets.warp.dense_motion_network)
        fft = renderer.render(feature, kp_source, kp_driving)
        fft_ms = _gpu_ms(lambda: renderer.render(feature, kp_source, kp_driving), runs=10)

    def levels(a: Any, b: Any) -> dict[str, float]:
        diff = (a.int() - b.int()).abs().float()
        return {"max": float(diff.max()), "mean": float(diff.mean())}

    return {
        "batch": batch,
        "frames_fft_vs_cudnn_levels": levels(fft, cudnn),
        "frames_cudnn_vs_fp32_levels": levels(cudnn, reference),
        "frames_fft_vs_fp32_levels": levels(fft, reference),
        "eager_warp_decode_ms": {"cudnn": cudnn_ms, "fft": fft_ms},
        "frame_std_levels": float(cudnn.float().std()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batches", default="1,8,16")
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--ditto-code", type=Path)
    args = parser.parse_args()
    import torch

    record: dict[str, Any] = {
        "benchmark": "mask_conv",
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "shape": {"channels": CHANNELS, "outputs": OUTPUTS, "kernel": KERNEL, "spatial": SPATIAL},
    }
    record["op"] = op_level([int(b) for b in args.batches.split(",")])
    args.out.write_text(json.dumps(record, indent=2))
    if args.model_dir is not None and args.ditto_code is not None:
        record["ditto"] = with_ditto(args.model_dir, args.ditto_code, batch=8)
        args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record.get("ditto", {}), indent=2))


if __name__ == "__main__":
    main()
