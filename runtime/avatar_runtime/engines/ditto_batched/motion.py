"""One job's motion: which audio-condition window it needs next, and its frames' motion.

Ditto diffuses motion in windows of 80 frames that overlap by 10; each new
window is conditioned on the motion of the last frame kept from the one before
(``kp_cond``), and its first 10 frames are blended into the previous window's
last 10 (a linear cross-fade), then the blended stretch is smoothed (3-frame
mean over the pose and shift dimensions). ``MotionTrack`` keeps that
bookkeeping for one job on the GPU, as Ditto's ``Audio2Motion`` does with numpy
in its offline mode: windows start every 70 frames; the last is padded by
repeating its last condition frame and gives only the frames the audio has.

The audio condition arrives in pieces (``feed``) as the speech is heard, so a
job can start before its speech is complete; ``end`` says no more comes. A
window's starting noise comes from the job's own generator, so a job's motion
is the same whichever jobs share its batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

POSE_DIMS = 202  # scale, pitch, yaw and roll bins, shift: what Ditto's smoothing averages


@dataclass(frozen=True)
class WindowInput:
    """What the diffusion needs for one window of one job."""

    index: int
    kp_cond: torch.Tensor
    """(motion,): the motion the window continues from."""
    aud_cond: torch.Tensor
    """(frames, width): the audio condition, padded to a whole window."""
    noise: torch.Tensor
    """(frames, motion): the starting noise, from the job's generator."""
    valid: int
    """Frames of this window that the audio covers (70, or fewer for the last)."""


def smooth(seq: torch.Tensor, start: int, stop: int, *, dims: int = POSE_DIMS) -> None:
    """Ditto's motion smoothing (kernel 3) in place over rows ``start:stop`` of ``seq``
    (frames, motion): each row's first ``dims`` values become the mean of it and its
    neighbours, read from the rows as they were before (fewer neighbours at the ends)."""
    import torch

    count = seq.shape[0]
    if stop <= start:
        return
    source = seq[:, :dims].clone()
    rows = torch.arange(start, stop, device=seq.device)
    left = (rows - 1).clamp(min=0)
    right = (rows + 1).clamp(max=count - 1)
    has_left = (rows > 0).to(seq.dtype).unsqueeze(1)
    has_right = (rows < count - 1).to(seq.dtype).unsqueeze(1)
    total = source[rows] + source[left] * has_left + source[right] * has_right
    seq[start:stop, :dims] = total / (1 + has_left + has_right)


class MotionTrack:
    """Per-job window bookkeeping; not thread-safe (the engine holds its lock)."""

    def __init__(
        self,
        *,
        kp_cond: torch.Tensor,
        generator: torch.Generator,
        window: int = 80,
        overlap: int = 10,
    ) -> None:
        import torch

        self._kp_cond = kp_cond.reshape(-1)
        self.motion_dim = self._kp_cond.shape[0]
        self.window = window
        self.overlap = overlap
        self.stride = window - overlap
        self._generator = generator
        self._cond: list[torch.Tensor] = []
        self._cond_frames = 0
        self._consumed = 0  # condition frames already covered by an issued window
        self._ended = False
        self._in_flight: WindowInput | None = None
        self._issued = 0
        self._tail: torch.Tensor | None = None  # last `overlap` frames, not yet shown
        self._last: torch.Tensor | None = None  # the last frame shown (for smoothing)
        device = self._kp_cond.device
        self._alpha = (torch.arange(overlap, device=device, dtype=torch.float32) / overlap)[:, None]
        self.frames_out = 0

    def feed(self, cond: torch.Tensor) -> None:
        """More audio condition, (frames, width), in order."""
        if self._ended:
            raise RuntimeError("the job's audio condition has ended")
        if cond.shape[0]:
            self._cond.append(cond)
            self._cond_frames += cond.shape[0]

    def end(self) -> None:
        self._ended = True

    @property
    def done(self) -> bool:
        return self._ended and self._in_flight is None and self._consumed >= self._cond_frames

    def next_window(self) -> WindowInput | None:
        """The next window to diffuse, once the audio covers it and the previous window's
        motion is back (each window continues from the one before); else None."""
        import torch

        if self._in_flight is not None or self._consumed >= self._cond_frames:
            return None
        have = self._cond_frames - self._consumed
        if have < self.window and not self._ended:
            return None
        cond = torch.cat(self._cond) if len(self._cond) > 1 else self._cond[0]
        self._cond = [cond]
        piece = cond[self._consumed : self._consumed + self.window]
        valid = self.stride if piece.shape[0] == self.window else piece.shape[0]
        if piece.shape[0] < self.window:
            pad = piece[-1:].expand(self.window - piece.shape[0], -1)
            piece = torch.cat([piece, pad])
        noise = torch.randn(
            (self.window, self.motion_dim),
            generator=self._generator,
            device=self._kp_cond.device,
        )
        self._in_flight = WindowInput(
            index=self._issued, kp_cond=self._kp_cond, aud_cond=piece, noise=noise, valid=valid
        )
        self._issued += 1
        return self._in_flight

    def accept(self, window: WindowInput, motion: torch.Tensor) -> torch.Tensor:
        """The diffused motion of ``window`` (frames, motion); returns the motion of the
        frames it adds, in order (``window.valid`` rows)."""
        import torch

        if window is not self._in_flight:
            raise RuntimeError("motion for a window that is not the one in flight")
        self._in_flight = None
        self._consumed += window.valid
        if self._tail is None:
            seq = motion.clone()
            smooth(seq, 0, seq.shape[0])
            shown = seq
        else:
            head = self._tail * (1 - self._alpha) + motion[: self.overlap] * self._alpha
            seq = torch.cat([self._last, head, motion[self.overlap :]])  # type: ignore[list-item]
            smooth(seq, 1, self.overlap + 2)
            shown = seq[1:]
        out = shown[: window.valid]
        self._tail = shown[self.stride :] if window.valid == self.stride else None
        self._last = out[-1:]
        self._kp_cond = shown[self.stride - 1]
        self._cond = [torch.cat(self._cond)[self._consumed :]] if self._cond else []
        self._cond_frames -= self._consumed
        self._consumed = 0
        if self._tail is None and not self.done:
            # a short window that was not the last: Ditto only pads the last one
            raise RuntimeError("a window shorter than the stride before the audio ended")
        self.frames_out += out.shape[0]
        return out
