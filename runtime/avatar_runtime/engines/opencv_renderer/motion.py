"""Per-frame animation curves: mouth, blinks and head motion, computed once per job.

Everything that depends on time is decided here, before any pixel is touched, so
the drawing loop only reads arrays. Curves are built on a 100 Hz grid and then
sampled at the frame times, so sounds shorter than a frame still shape the lips.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from avatar_runtime.engines.base import Speech, TimedPhone
from avatar_runtime.engines.opencv_renderer.visemes import CLOSED, REST, keyframes

FloatArray = npt.NDArray[np.float32]

_GRID_HZ = 100
# Lips anticipate and trail the next sound (coarticulation): ~35 ms of smoothing.
_COARTICULATION_SECONDS = 0.035
# Below this level (relative to the loudest 10 ms) the speaker is silent.
_SILENCE_DB = -38.0


@dataclass(frozen=True)
class Track:
    """One value per frame for each animated parameter."""

    opening: FloatArray  # 0 closed .. 1 jaw dropped
    spread: FloatArray  # -1 rounded .. 1 wide
    press: FloatArray  # 0 .. 1 lips pressed together (p, b, m)
    blink: FloatArray  # 0 open .. 1 closed
    head_angle: FloatArray  # degrees
    head_dx: FloatArray  # fraction of the frame size
    head_dy: FloatArray
    head_scale: FloatArray  # 1 = as framed

    def __len__(self) -> int:
        return len(self.opening)


def loudness(speech: Speech, *, frames: int) -> tuple[FloatArray, FloatArray]:
    """Per-grid-step loudness in 0..1 and a speech gate (1 while someone speaks)."""
    hop = max(1, speech.sample_rate // _GRID_HZ)
    steps = max(frames, int(np.ceil(len(speech.samples) / hop)))
    padded = np.zeros(steps * hop, dtype=np.float32)
    padded[: len(speech.samples)] = speech.samples[: steps * hop]
    rms = np.sqrt(np.mean(padded.reshape(steps, hop) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms / max(float(rms.max()), 1e-6))
    level = np.clip((db - _SILENCE_DB) / -_SILENCE_DB, 0.0, 1.0).astype(np.float32)
    gate = (db > _SILENCE_DB).astype(np.float32)
    # Bridge gaps shorter than 80 ms (stop consonants) so the gate does not flicker.
    kernel = np.ones((9, 1), np.uint8)
    closed_gate = cv2.morphologyEx(gate.reshape(-1, 1), cv2.MORPH_CLOSE, kernel).ravel()
    return level, closed_gate.astype(np.float32)


def _smooth(values: FloatArray, seconds: float) -> FloatArray:
    sigma = seconds * _GRID_HZ
    radius = max(1, int(sigma * 3))
    smoothed = cv2.GaussianBlur(
        values.reshape(-1, 1).astype(np.float32), (1, 2 * radius + 1), 0, sigmaY=sigma
    )
    return np.asarray(smoothed.ravel(), dtype=np.float32)


def mouth_curves(
    phones: list[TimedPhone] | None, level: FloatArray, gate: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Opening and spread on the grid: visemes where known, loudness otherwise."""
    steps = len(level)
    opening = np.zeros(steps, np.float32)
    spread = np.zeros(steps, np.float32)
    if phones:
        for start, end, shape in keyframes(phones):
            a, b = round(start * _GRID_HZ), max(round(end * _GRID_HZ), round(start * _GRID_HZ) + 1)
            opening[a:b] = shape.opening
            spread[a:b] = shape.spread
        # Louder syllables open wider; silence closes the mouth whatever the text said.
        opening *= (0.55 + 0.45 * level) * gate
    else:
        # No timing for the sounds: open with the voice, but close on silence.
        opening = np.clip(level * 1.1, 0, 1) * gate
        spread[:] = REST.spread
    return (
        _smooth(opening, _COARTICULATION_SECONDS),
        _smooth(spread, _COARTICULATION_SECONDS * 1.5),
    )


def closures(phones: list[TimedPhone] | None) -> list[float]:
    """The middle of every lip closure (p, b, m), in seconds."""
    return [(a + b) / 2 for a, b, shape in keyframes(phones or []) if shape is CLOSED]


def close_lips(opening: FloatArray, centres: list[float], *, fps: int) -> FloatArray:
    """Every closure reaches closed lips in the frame nearest its middle.

    A /p/ lasts 20-50 ms; the coarticulation smoothing, and sampling at 40 ms frames,
    leave the lips a few pixels apart through most of them, which a viewer sees as
    mumbling. So the frame nearest each closure is closed, and the frames around it
    (within one frame time) ease into it.
    """
    out = opening.copy()
    step = _GRID_HZ / fps
    for centre in centres:
        frame_step = round(round(centre * fps) * step)  # the grid step that frame reads
        for k in range(max(0, int(frame_step - step)), min(len(out), int(frame_step + step) + 1)):
            out[k] = min(out[k], out[k] * abs(k - frame_step) / step)
    return out


def press_curve(
    phones: list[TimedPhone] | None, centres: list[float], *, steps: int, fps: int
) -> FloatArray:
    """How firmly the lips are pressed together: 1 through every p, b, m and in the frame
    nearest its middle (whatever the smoothing left), easing in and out over a frame.

    Lips at rest are the photo's, which may be parted (a smile showing teeth); a closure
    must close them, so it is a motion of its own rather than an opening of 0.
    """
    press = np.zeros(steps, np.float32)
    for start, end, shape in keyframes(phones or []):
        if shape is CLOSED:
            a = round(start * _GRID_HZ)
            press[a : max(round(end * _GRID_HZ), a + 1)] = 1.0
    press = np.maximum(press, _smooth(press, _COARTICULATION_SECONDS))
    step = _GRID_HZ / fps
    for centre in centres:
        frame_step = round(round(centre * fps) * step)
        for k in range(max(0, int(frame_step - step)), min(steps, int(frame_step + step) + 1)):
            press[k] = max(press[k], 1.0 - abs(k - frame_step) / step)
    return np.clip(press, 0.0, 1.0)


def blink_curve(steps: int, rng: np.random.Generator) -> FloatArray:
    """Blinks every 2-6 s (people blink ~15 times a minute), now and then twice."""
    curve = np.zeros(steps, np.float32)
    shape = np.concatenate([np.linspace(0, 1, 8), np.ones(3), np.linspace(1, 0, 11)]).astype(
        np.float32
    )  # 80 ms closing, 30 ms closed, 110 ms opening
    t = rng.uniform(0.6, 2.0)
    while True:
        start = int(t * _GRID_HZ)
        if start >= steps:
            break
        end = min(steps, start + len(shape))
        curve[start:end] = np.maximum(curve[start:end], shape[: end - start])
        t += 0.35 if rng.random() < 0.15 else rng.uniform(2.0, 6.0)
    return curve


def _wander(steps: int, rng: np.random.Generator, amplitude: float) -> FloatArray:
    """Slow, non-repeating drift: a sum of three sines at 0.1-0.5 Hz."""
    t = np.arange(steps, dtype=np.float32) / _GRID_HZ
    out = np.zeros(steps, np.float32)
    for weight in (0.55, 0.3, 0.15):
        freq = rng.uniform(0.1, 0.5)
        out += weight * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    return out * amplitude


def build_track(
    speech: Speech,
    *,
    phones: list[TimedPhone] | None,
    fps: int,
    frames: int,
    seed: int = 0,
) -> Track:
    """All curves for ``frames`` frames at ``fps``; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    level, gate = loudness(speech, frames=int(np.ceil(frames / fps * _GRID_HZ)) + 1)
    opening, spread = mouth_curves(phones, level, gate)
    centres = closures(phones)
    opening = close_lips(opening, centres, fps=fps)
    steps = len(level)
    emphasis = _smooth(level * gate, 0.25)
    curves = {
        "opening": opening,
        "spread": spread,
        "press": press_curve(phones, centres, steps=steps, fps=fps),
        "blink": blink_curve(steps, rng),
        "head_angle": _wander(steps, rng, 1.6) + 0.6 * emphasis,
        "head_dx": _wander(steps, rng, 0.008),
        # The head dips a little on stressed words.
        "head_dy": _wander(steps, rng, 0.006) + 0.006 * emphasis,
        "head_scale": 1.0 + _wander(steps, rng, 0.004),  # the background no longer moves
    }
    index = np.minimum((np.arange(frames) / fps * _GRID_HZ).round().astype(int), steps - 1)
    sampled = {name: np.ascontiguousarray(curve[index]) for name, curve in curves.items()}
    return Track(**sampled)
