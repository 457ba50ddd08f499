"""Animation curves: silence closes the mouth, eyes blink, the head moves a little."""

import numpy as np

from avatar_runtime.engines.base import Speech, TimedPhone
from avatar_runtime.engines.opencv_renderer.motion import build_track

RATE = 16_000


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)


def test_mouth_follows_the_phones_and_closes_in_silence() -> None:
    # 1 s of voice, 1 s of silence, 1 s of voice; the text claims an /a/ throughout.
    samples = np.concatenate([tone(1.0), np.zeros(RATE, np.float32), tone(1.0)])
    speech = Speech(samples=samples, sample_rate=RATE)
    track = build_track(speech, phones=[TimedPhone("a", 0.0, 3.0)], fps=25, frames=75, seed=1)
    assert track.opening[5:20].mean() > 0.5
    assert track.opening[32:43].max() < 0.02  # silence wins over the text


def test_a_closing_consonant_closes_the_lips_mid_word() -> None:
    speech = Speech(samples=tone(0.9), sample_rate=RATE)
    phones = [TimedPhone("a", 0.0, 0.3), TimedPhone("m", 0.3, 0.6), TimedPhone("a", 0.6, 0.9)]
    track = build_track(speech, phones=phones, fps=50, frames=45, seed=1)
    assert track.opening[22] < 0.2 < track.opening[8]


def test_every_short_closure_shows_closed_lips_in_a_frame() -> None:
    """/p/ /b/ /m/ of 20-45 ms between open vowels, at 25 fps: each is seen closed."""
    speech = Speech(samples=tone(3.0), sample_rate=RATE)
    phones, t, closing = [], 0.0, []
    for i, length in enumerate([0.02, 0.025, 0.03, 0.035, 0.04, 0.045] * 2):
        phones.append(TimedPhone("a", t, t + 0.17))
        t += 0.17
        phones.append(TimedPhone("pbm"[i % 3], t, t + length))
        closing.append((t, t + length))
        t += length
    phones.append(TimedPhone("a", t, 3.0))
    fps = 25
    track = build_track(speech, phones=phones, fps=fps, frames=75, seed=1)
    for start, end in closing:
        near = range(int(start * fps) - 1, int(end * fps) + 2)
        assert min(track.opening[f] for f in near) < 0.02, (start, end)
    assert track.opening.max() > 0.5  # the vowels still open


def test_without_phones_the_mouth_follows_the_voice() -> None:
    samples = np.concatenate([tone(1.0), np.zeros(RATE, np.float32)])
    track = build_track(Speech(samples, RATE), phones=None, fps=25, frames=50, seed=1)
    assert track.opening[5:20].mean() > 0.5 > track.opening[30:45].max()


def test_blinks_come_every_few_seconds_and_the_head_sways_gently() -> None:
    speech = Speech(np.zeros(30 * RATE, np.float32), RATE)
    track = build_track(speech, phones=None, fps=25, frames=750, seed=7)
    closed = track.blink > 0.9
    blinks = int(np.sum(closed[1:] & ~closed[:-1]))
    assert 4 <= blinks <= 16  # 30 s at 2-6 s apart
    assert 0.2 < np.ptp(track.head_angle) < 5.0
    assert np.abs(np.diff(track.head_angle)).max() < 0.5  # no jumps between frames


def test_tracks_are_reproducible() -> None:
    speech = Speech(tone(2.0), RATE)
    a = build_track(speech, phones=None, fps=25, frames=50, seed=3)
    b = build_track(speech, phones=None, fps=25, frames=50, seed=3)
    assert np.array_equal(a.blink, b.blink)
    assert np.array_equal(a.head_dx, b.head_dx)


def test_every_closure_presses_the_lips_and_silence_does_not() -> None:
    """The photo's lips may be parted (a smile): a /p/ /b/ /m/ presses them together in
    the frame nearest its middle; a pause leaves them as the photo has them."""
    samples = np.concatenate([tone(1.2), np.zeros(RATE, np.float32)])
    speech = Speech(samples=samples, sample_rate=RATE)
    phones, t, middles = [], 0.0, []
    for length in (0.02, 0.03, 0.045, 0.1):
        phones.append(TimedPhone("a", t, t + 0.2))
        t += 0.2
        phones.append(TimedPhone("m", t, t + length))
        middles.append(t + length / 2)
        t += length
    phones.append(TimedPhone("a", t, 1.2))
    track = build_track(speech, phones=phones, fps=25, frames=55, seed=1)
    for middle in middles:
        assert track.press[round(middle * 25)] == 1.0, middle
        assert track.opening[round(middle * 25)] < 0.02, middle
    assert track.press[2] < 0.01  # mid vowel
    assert track.press[40:].max() == 0.0  # silence
