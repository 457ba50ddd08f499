"""A Ditto model volume with random weights, laid out as the real one, for GPU runs.

Ditto's checkpoints cannot be downloaded here (no model hub), so this writes
what the runtime reads from ``MODEL_DIR/ditto``:

- ``code/``: a copy of Ditto's public repository (fetched into a git-ignored
  folder, never committed);
- ``checkpoints/ditto_pytorch/models/*.pth``: Ditto's six PyTorch networks,
  built from Ditto's own modules with random weights and saved in the layout
  each module's ``load_model`` reads;
- ``checkpoints/ditto_pytorch/aux_models/*.onnx``: stand-ins for the face and
  audio helpers (InsightFace detector and 106 landmarks, the 203-landmark
  model, HuBERT), with the input and output names and shapes Ditto's code
  uses. The face helpers answer one centred face whatever the image, since a
  random detector finds nothing; the HuBERT stand-in is one strided
  convolution with HuBERT's frame rate and width (1024), not HuBERT-large;
- ``checkpoints/ditto_cfg/v0.4_hubert_cfg_pytorch.pkl``: the pipeline
  configuration ``parse_cfg`` reads, pointing at those files.

The configuration reads every helper through Ditto's ONNX wrappers
(``force_ori_type`` off), the path its ONNX and TensorRT configurations take:
the other path imports MediaPipe, whose ``face_landmarker.task`` (TensorFlow
Lite) cannot be built here. Eye landmarks therefore come from the ONNX set's
BlazeFace + FaceMesh pair (stand-ins too), and the ``.task`` file the
runtime's volume check lists is written as a marker that says so.

So the networks that make each frame (appearance and motion extractors,
LMDM, stitching, warping, SPADE decoder) are Ditto's, at full size, on the
GPU; the helpers cost next to nothing here and their real cost is not
measured.

    python -m benchmarks.gpu.ditto_volume --ditto-code .fetched/ditto --model-dir /tmp/models
"""

from __future__ import annotations

import argparse
import importlib
import pickle
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from avatar_runtime.engines.model_volume import DITTO_CHECKPOINTS_DIR, DITTO_CODE_DIR

OPSET = 13
MOTION_DIM = 265
# Audio condition: HuBERT (1024) + emotion (8) + eye openness (2) + eye ball (6) + the
# source's keypoints (63), as the condition handler concatenates them with all four on.
AUDIO_COND_DIM = 1024 + 8 + 2 + 6 + 63
SEQ_FRAMES = 80


# ---------------------------------------------------------------- ONNX stand-ins


def _model(graph: Any) -> Any:
    """At opset 13 and IR version 8, which any onnxruntime of the last years reads."""
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def _fixed_outputs(
    input_name: str, input_shape: list[Any], outputs: dict[str, np.ndarray], name: str
) -> Any:
    """A graph whose outputs are fixed arrays, tied to its input (0 x its mean) so the
    input is really read, as a network would read it."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    initializers = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    graph_outputs = []
    for out, value in outputs.items():
        initializers.append(numpy_helper.from_array(value.astype(np.float32), f"{out}_value"))
        nodes.append(helper.make_node("Add", [f"{out}_value", "nothing"], [out]))
        graph_outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, value.shape))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
        graph_outputs,
        initializers,
    )
    return _model(graph)


def _face_points(count: int, eyes: dict[str, list[int]], lips: list[int], seed: int) -> np.ndarray:
    """Landmarks in [-1, 1] shaped like a face: the named eye points left and right of
    centre, the lip points below, the rest spread over an oval."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, count)
    radius = np.sqrt(rng.uniform(0.05, 1, count))
    points = np.stack([0.55 * radius * np.cos(angle), 0.7 * radius * np.sin(angle)], 1)
    for index in eyes["left"]:
        points[index] = np.array((-0.3, -0.2)) + rng.normal(0, 0.02, 2)
    for index in eyes["right"]:
        points[index] = np.array((0.3, -0.2)) + rng.normal(0, 0.02, 2)
    for index in lips:
        points[index] = np.array((0.0, 0.35)) + rng.normal(0, 0.02, 2)
    return points.astype(np.float32)


def _retinaface() -> Any:
    """InsightFace's SCRFD detector (det_10g): per stride 8/16/32 and 2 anchors a cell,
    scores, box distances and 5 keypoints, in that output order. One face, centred."""
    scores, boxes, keypoints = {}, {}, {}
    for stride in (8, 16, 32):
        cells = (512 // stride) ** 2 * 2
        scores[stride] = np.zeros((cells, 1), np.float32)
        boxes[stride] = np.zeros((cells, 4), np.float32)
        keypoints[stride] = np.zeros((cells, 10), np.float32)
    centre = (8 * 16 + 8) * 2  # stride 32, cell (8, 8): pixel (256, 256) of the 512 input
    scores[32][centre] = 0.95
    boxes[32][centre] = np.array([110, 130, 110, 110]) / 32  # left, top, right, bottom
    eyes_nose_mouth = [-40, -30, 40, -30, 0, 5, -30, 45, 30, 45]
    keypoints[32][centre] = np.array(eyes_nose_mouth) / 32
    outputs = {
        **{f"scores{i}": scores[s] for i, s in enumerate((8, 16, 32), 1)},
        **{f"boxes{i}": boxes[s] for i, s in enumerate((8, 16, 32), 1)},
        **{f"kps{i}": keypoints[s] for i, s in enumerate((8, 16, 32), 1)},
    }
    return _fixed_outputs("image", [1, 3, 512, 512], outputs, "det_10g_standin")


def _landmark106() -> Any:
    points = _face_points(106, {"left": [33, 35, 40, 39], "right": [87, 89, 94, 93]}, [52, 61], 1)
    return _fixed_outputs("data", [1, 3, 192, 192], {"fc1": points.reshape(1, -1)}, "2d106det")


def _landmark203() -> Any:
    eyes = {"left": [0, 6, 12, 18], "right": [24, 30, 36, 42]}
    points = (_face_points(203, eyes, [48, 66], 2) * 0.4 + 0.5).reshape(1, -1)  # 0..1 of 224
    outputs = {"landmarks": points}
    return _fixed_outputs("input", [1, 3, 224, 224], outputs, "landmark203")


def _blaze_face() -> Any:
    """MediaPipe BlazeFace (128 x 128 NHWC): 896 anchors x 16 regressors, 1 score each."""
    regressors = np.zeros((1, 896, 16), np.float32)
    scores = np.full((1, 896, 1), -10.0, np.float32)
    centre = (8 * 16 + 8) * 2  # stride 8, cell (8, 8)
    keypoints = [-20, -15, 20, -15, 0, 5, 0, 25, -40, -5, 40, -5]
    regressors[0, centre] = [0, 0, 80, 90, *keypoints]
    scores[0, centre] = 6.0
    outputs = {"regressors": regressors, "classificators": scores}
    return _fixed_outputs("input", [1, 128, 128, 3], outputs, "blaze_face")


def _face_mesh() -> Any:
    """MediaPipe FaceMesh (256 x 256 NHWC): 478 points (x, y in pixels, z) and two scores."""
    rng = np.random.default_rng(3)
    mesh = np.concatenate([rng.uniform(48, 208, (478, 2)), rng.normal(0, 5, (478, 1))], 1)
    outputs = {"Identity": mesh.reshape(1, 1, 1, 1434), "Identity_1": np.ones((1, 1, 1, 1)),
               "Identity_2": np.ones((1, 1))}  # fmt: skip
    return _fixed_outputs("input", [1, 256, 256, 3], outputs, "face_mesh")


def _hubert() -> Any:
    """Audio (1, samples) to features (frames, 1024) at HuBERT's 20 ms hop (400-sample
    window, 320 stride): 6480 samples give 20 frames, as Ditto's windows expect."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    kernel = rng.normal(0, 0.05, (1024, 1, 400)).astype(np.float32)
    nodes = [
        helper.make_node("Unsqueeze", ["input_values", "axis1"], ["wave"]),
        helper.make_node("Conv", ["wave", "kernel"], ["conv"], strides=[320]),
        helper.make_node("Tanh", ["conv"], ["act"]),
        helper.make_node("Squeeze", ["act", "axis0"], ["features"]),
        helper.make_node("Transpose", ["features"], ["encoding_out"], perm=[1, 0]),
    ]
    initializers = [
        numpy_helper.from_array(kernel, "kernel"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
    ]
    graph = helper.make_graph(
        nodes,
        "hubert_standin",
        [helper.make_tensor_value_info("input_values", TensorProto.FLOAT, [1, "samples"])],
        [helper.make_tensor_value_info("encoding_out", TensorProto.FLOAT, ["frames", 1024])],
        initializers,
    )
    return _model(graph)


# ---------------------------------------------------------------- Ditto's networks


def _networks(seed: int) -> dict[str, Any]:
    """Ditto's six networks with random weights, each in the checkpoint layout its
    ``load_model`` reads."""
    import torch

    torch.manual_seed(seed)
    modules = importlib.import_module("core.models.modules")
    lmdm = modules.LMDM(
        motion_feat_dim=MOTION_DIM, audio_feat_dim=AUDIO_COND_DIM, seq_frames=SEQ_FRAMES
    )
    return {
        "appearance_extractor": modules.AppearanceFeatureExtractor().state_dict(),
        "motion_extractor": modules.MotionExtractor().state_dict(),
        "warp_network": modules.WarpingNetwork().state_dict(),
        "decoder": modules.SPADEDecoder().state_dict(),
        "stitch_network": {"retarget_shoulder": modules.StitchingNetwork().state_dict()},
        "lmdm_v0.4_hubert": {"model_state_dict": lmdm.model.state_dict()},
    }


def _cfg(device: str) -> dict[str, Any]:
    def model(path: str, **extra: Any) -> dict[str, Any]:
        return {"model_path": path, "device": device, **extra}

    return {
        "base_cfg": {
            "insightface_det_cfg": model("aux_models/det_10g.onnx"),
            "landmark106_cfg": model("aux_models/2d106det.onnx"),
            "landmark203_cfg": model("aux_models/landmark203.onnx"),
            "landmark478_cfg": {
                "blaze_face_model_path": "aux_models/blaze_face.onnx",
                "face_mesh_model_path": "aux_models/face_mesh.onnx",
                "device": device,
                "force_ori_type": False,
            },
            "appearance_extractor_cfg": model("models/appearance_extractor.pth"),
            "motion_extractor_cfg": model("models/motion_extractor.pth"),
            "stitch_network_cfg": model("models/stitch_network.pth"),
            "warp_network_cfg": model("models/warp_network.pth"),
            "decoder_cfg": model("models/decoder.pth"),
            "hubert_cfg": model("aux_models/hubert_streaming_fix_kv.onnx"),
        },
        "audio2motion_cfg": {
            "model_path": "models/lmdm_v0.4_hubert.pth",
            "device": device,
            "motion_feat_dim": MOTION_DIM,
            "audio_feat_dim": AUDIO_COND_DIM,
            "seq_frames": SEQ_FRAMES,
            "use_emo": True,
            "use_sc": True,
            "use_eye_open": True,
            "use_eye_ball": True,
            "w2f_type": "hubert",
        },
        "default_kwargs": {"sampling_timesteps": 50, "overlap_v2": 10, "emo": 4},
    }


def build(model_dir: Path, ditto_code: Path, *, device: str = "cuda", seed: int = 0) -> Path:
    """Write the volume under ``model_dir`` and return ``model_dir``."""
    import onnx
    import torch

    code = model_dir / DITTO_CODE_DIR
    if not code.exists():
        shutil.copytree(ditto_code, code, ignore=shutil.ignore_patterns(".git", "example"))
    if str(code) not in sys.path:
        sys.path.insert(0, str(code))
    root = model_dir / DITTO_CHECKPOINTS_DIR
    models, aux = root / "ditto_pytorch" / "models", root / "ditto_pytorch" / "aux_models"
    for folder in (models, aux, root / "ditto_cfg"):
        folder.mkdir(parents=True, exist_ok=True)
    for name, state in _networks(seed).items():
        torch.save(state, models / f"{name}.pth")
    standins = {
        "det_10g.onnx": _retinaface(),
        "2d106det.onnx": _landmark106(),
        "landmark203.onnx": _landmark203(),
        "blaze_face.onnx": _blaze_face(),
        "face_mesh.onnx": _face_mesh(),
        "hubert_streaming_fix_kv.onnx": _hubert(),
    }
    for name, graph in standins.items():
        onnx.checker.check_model(graph)
        onnx.save(graph, str(aux / name))
    (aux / "face_landmarker.task").write_text(
        "not MediaPipe's model: this random-weight volume's configuration uses the "
        "BlazeFace + FaceMesh ONNX pair instead (see benchmarks/gpu/ditto_volume.py)\n"
    )
    with (root / "ditto_cfg" / "v0.4_hubert_cfg_pytorch.pkl").open("wb") as out:
        pickle.dump(_cfg(device), out)
    return model_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ditto-code", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    print(build(args.model_dir, args.ditto_code, device=args.device))


if __name__ == "__main__":
    main()
