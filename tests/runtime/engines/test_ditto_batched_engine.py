"""The batched Ditto engine end to end on the CPU, with small stand-in networks.

Ditto's own network classes cannot run at a useful size on a CI runner (its
warping network takes seconds a frame on a CPU), and its code is not part of
this repository, so these tests give the engine small modules of our own with
the same call signatures and the same contracts: a denoiser that drops its
audio condition through a module-level ``prob_mask_like`` (as Ditto's does), a
warp that takes features and two keypoint sets, a decoder to RGB in [0, 1], a
stitching network. Every stand-in treats batch rows independently, as Ditto's
networks do in eval mode, so "batched across jobs" must give what "alone"
gives. ``test_ditto_batched_with_ditto.py`` checks the parts against Ditto's
real classes where its code is fetched.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from avatar_runtime.engines.ditto_batched import capture
from avatar_runtime.engines.ditto_batched.diffusion import FoldedSampler
from avatar_runtime.engines.ditto_batched.engine import (
    BatchedDittoEngine,
    EngineSettings,
    Portrait,
)
from avatar_runtime.engines.ditto_batched.frames import FrameRenderer
from avatar_runtime.engines.ditto_batched.keypoints import MOTION_DIM, PortraitMotion
from avatar_runtime.engines.ditto_batched.networks import DittoNetworks

WIDTH = 12  # audio condition width (Ditto's is 1103)
FRAMES = 80
STEPS = 4


def _prob_mask_like(shape: tuple[int, ...], prob: float, device: Any) -> torch.Tensor:
    """Ditto's contract: one keep-probability for the whole batch."""
    if prob == 1:
        return torch.ones(shape, device=device, dtype=torch.bool)
    if prob == 0:
        return torch.zeros(shape, device=device, dtype=torch.bool)
    return torch.rand(shape, device=device) < prob


MASKS = types.SimpleNamespace(prob_mask_like=capture.per_sample_mask(_prob_mask_like))


class Denoiser(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(2 * MOTION_DIM, 32)
        self.cond = nn.Linear(WIDTH, 32)
        self.null = nn.Parameter(torch.randn(1, FRAMES, 32))
        self.time = nn.Linear(1, 32)
        self.out = nn.Linear(32, MOTION_DIM)

    def forward(
        self,
        x: torch.Tensor,
        cond_frame: torch.Tensor,
        cond_embed: torch.Tensor,
        times: torch.Tensor,
        cond_drop_prob: Any = 0.0,
    ) -> torch.Tensor:
        keep = MASKS.prob_mask_like((x.shape[0],), 1 - cond_drop_prob, device=x.device)
        h = self.inp(torch.cat([x, cond_frame[:, None].expand(-1, x.shape[1], -1)], -1))
        h = h + torch.where(keep[:, None, None], self.cond(cond_embed), self.null)
        h = h + self.time(times.float()[:, None, None] / 1000)
        out: torch.Tensor = self.out(torch.tanh(h)) * 0.1
        return out

    def guided_forward(
        self,
        x: torch.Tensor,
        cond_frame: torch.Tensor,
        cond: torch.Tensor,
        t: torch.Tensor,
        w: float,
    ) -> torch.Tensor:
        unguided = self.forward(x, cond_frame, cond, t, cond_drop_prob=1)
        guided = self.forward(x, cond_frame, cond, t, cond_drop_prob=0)
        return unguided + (guided - unguided) * w


class StandinLMDM(nn.Module):
    """Ditto's ``LMDM`` attributes the sampler reads, with a small schedule."""

    def __init__(self) -> None:
        super().__init__()
        self.motion_feat_dim, self.audio_feat_dim, self.seq_frames = MOTION_DIM, WIDTH, FRAMES
        self.model = Denoiser()
        self.guidance_weight = 2
        self.register_buffer("alphas_cumprod", torch.linspace(0.999, 0.01, 1000))
        self.sampling_timesteps: int | None = None

    def maybe_clip(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def predict_noise_from_start(
        self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor
    ) -> torch.Tensor:
        a = self.get_buffer("alphas_cumprod")[t].reshape(-1, 1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    def setup(self, steps: int) -> None:
        self.sampling_timesteps = steps
        times = list(reversed(torch.linspace(-1, 999, steps + 1).int().tolist()))
        self.time_pairs = list(itertools.pairwise(times))
        generator = torch.Generator().manual_seed(99)
        self.time_cond_list = [torch.full((1,), t, dtype=torch.long) for t, _ in self.time_pairs]
        self.alpha_next_sqrt_list = [torch.tensor(0.9) for _ in range(steps)]
        self.c_list = [torch.tensor(0.3) for _ in range(steps)]
        self.sigma_list = [torch.tensor(0.1) for _ in range(steps)]
        shape = (1, FRAMES, MOTION_DIM)
        self.noise_list = [torch.randn(shape, generator=generator) for _ in range(steps)]

    def unfolded(self, kp: torch.Tensor, aud: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The reference: Ditto's loop shape, one window, guidance as two calls."""
        for i, (_, time_next) in enumerate(self.time_pairs):
            t = self.time_cond_list[i]
            x_start = self.model.guided_forward(x, kp, aud, t, self.guidance_weight)
            if time_next < 0:
                return x_start
            pred_noise = self.predict_noise_from_start(x, t, x_start)
            noise = self.noise_list[i]
            x = x_start * self.alpha_next_sqrt_list[i] + self.c_list[i] * pred_noise
            x = x + self.sigma_list[i] * noise
        return x


class Warp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(
        self, feature: torch.Tensor, kp_s: torch.Tensor, kp_d: torch.Tensor
    ) -> torch.Tensor:
        shift = (kp_d - kp_s).mean(dim=(1, 2))[:, None, None, None]
        out: torch.Tensor = self.conv(feature.flatten(1, 2)) * (1 + 5 * shift) + 3 * shift
        return out


class Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(nn.functional.interpolate(self.conv(h), scale_factor=2))


class Stitch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Linear(126, 63)

    def forward(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        both = torch.cat([kp_source.flatten(1), kp_driving.flatten(1)], dim=1)
        return kp_driving + 0.05 * torch.tanh(self.mlp(both)).reshape(kp_driving.shape)


class Broken(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("decoder fell over")


def _networks(decoder: nn.Module | None = None) -> DittoNetworks:
    torch.manual_seed(0)
    return DittoNetworks(
        lmdm=StandinLMDM().eval(),
        stitch=Stitch().eval(),
        warp=Warp().eval(),
        decoder=(decoder or Decoder()).eval(),
        undo=lambda: None,
    )


def _portrait(seed: int = 0) -> Portrait:
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return scale * torch.randn(*shape, generator=generator)

    info = {
        "scale": 1 + rand(1, 1, scale=0.05),
        "pitch": rand(1, 66),
        "yaw": rand(1, 66),
        "roll": rand(1, 66),
        "t": rand(1, 3, scale=0.02),
        "exp": rand(1, 63, scale=0.02),
        "kp": rand(1, 63, scale=0.3),
    }
    return Portrait(feature=rand(1, 4, 2, 8, 8), motion=PortraitMotion.of(info, device="cpu"))


def _cond(frames: int, seed: int) -> torch.Tensor:
    return torch.randn(frames, WIDTH, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def engine() -> Iterator[BatchedDittoEngine]:
    settings = EngineSettings(buckets=(1, 2, 4), steps=STEPS, low_water=4, high_water=140)
    built = BatchedDittoEngine(_networks(), settings)
    yield built
    built.close()


def _read_all(handles: list[Any]) -> list[list[torch.Tensor]]:
    out: list[list[torch.Tensor]] = [[] for _ in handles]
    errors: list[BaseException] = []

    def read(i: int) -> None:
        try:
            out[i] = list(handles[i].frames())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(handles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return out


def _alone(engine: BatchedDittoEngine, portrait: Portrait, cond: torch.Tensor, seed: int) -> Any:
    handle = engine.open_job(portrait, seed=seed)
    handle.feed(cond)
    handle.end()
    return _read_all([handle])[0]


def test_the_folded_batched_sampler_gives_each_window_what_it_gives_alone() -> None:
    lmdm = StandinLMDM().eval()
    sampler = FoldedSampler(lmdm, steps=STEPS, buckets=(1, 4))
    generator = torch.Generator().manual_seed(1)
    kp = torch.randn(3, MOTION_DIM, generator=generator)
    aud = torch.randn(3, FRAMES, WIDTH, generator=generator)
    noise = torch.randn(3, FRAMES, MOTION_DIM, generator=generator)
    together = sampler.sample(kp, aud, noise)
    with torch.no_grad():
        for row in range(3):
            rows = slice(row, row + 1)
            alone = sampler.sample(kp[rows], aud[rows], noise[rows])
            reference = lmdm.unfolded(kp[rows], aud[rows], noise[rows])
            torch.testing.assert_close(together[rows], alone, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(together[rows], reference, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(together[0], together[1], atol=1e-3)  # the rows do differ


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_the_decoder_taking_a_few_rows_at_a_time_gives_the_same_frames(rows: int) -> None:
    nets = _networks()
    seen: list[int] = []
    nets.decoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    generator = torch.Generator().manual_seed(3)
    feature = torch.randn(5, 4, 2, 8, 8, generator=generator)
    kp_source = 0.1 * torch.randn(5, 21, 3, generator=generator)
    kp_driving = 0.1 * torch.randn(5, 21, 3, generator=generator)
    whole = FrameRenderer(nets.warp, nets.decoder, decoder_rows=0)
    parts = FrameRenderer(nets.warp, nets.decoder, decoder_rows=rows)
    expected = whole.render(feature, kp_source, kp_driving)
    assert seen == [5]
    seen.clear()
    got = parts.render(feature, kp_source, kp_driving)
    assert seen == [rows] * (5 // rows) + ([5 % rows] if 5 % rows else [])
    assert got.shape == (5, 16, 16, 3)
    assert int((got.int() - expected.int()).abs().max()) <= 1  # fp32 rounding at most
    assert float((got.float() - expected.float()).abs().mean()) < 0.01
    assert float(got.float().std()) > 1.0  # frames, not a constant


class SpadeLike(nn.Module):
    """Ditto's ``SPADEDecoder`` layout, small: ``fc``, ``G_middle_*`` blocks and two
    upsampling blocks conditioned on the decoder's input, ``conv_img`` to RGB."""

    class Block(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(width, width, 3, padding=1)
            self.gain = nn.Conv2d(8, width, 1)

        def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
            gain = nn.functional.interpolate(self.gain(seg), size=x.shape[2:])
            return torch.relu(self.conv(x)) * (1 + gain)

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Conv2d(8, 8, 3, padding=1)
        self.G_middle_0 = SpadeLike.Block(8)
        self.G_middle_1 = SpadeLike.Block(8)
        self.up = nn.Upsample(scale_factor=2)
        self.up_0 = SpadeLike.Block(8)
        self.up_1 = SpadeLike.Block(8)
        self.conv_img = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:  # as SPADEDecoder.forward
        x = self.G_middle_1(self.G_middle_0(self.fc(feature), feature), feature)
        x = self.up_1(self.up(self.up_0(self.up(x), feature)), feature)
        return torch.sigmoid(self.conv_img(nn.functional.leaky_relu(x, 2e-1)))


def test_a_spade_decoder_upsamples_a_few_rows_at_a_time_and_gives_its_frames() -> None:
    torch.manual_seed(5)
    nets = _networks(decoder=SpadeLike().eval())
    seen: list[int] = []
    nets.decoder.up_1.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    middle: list[int] = []
    nets.decoder.G_middle_0.register_forward_pre_hook(
        lambda _m, args: middle.append(args[0].shape[0])
    )
    generator = torch.Generator().manual_seed(6)
    feature = torch.randn(5, 4, 2, 8, 8, generator=generator)
    kp = 0.1 * torch.randn(5, 21, 3, generator=generator)
    with torch.no_grad():
        theirs = nets.decoder(nets.warp(feature, kp, kp + 0.05))
    expected = (theirs.permute(0, 2, 3, 1).clamp(0, 1) * 255).to(torch.uint8)
    seen.clear()
    middle.clear()
    got = FrameRenderer(nets.warp, nets.decoder, decoder_rows=2).render(feature, kp, kp + 0.05)
    assert middle == [5]  # the 64 x 64 half on the whole batch
    assert seen == [2, 2, 1]  # the upsampling half two rows at a time
    assert got.shape == (5, 32, 32, 3)
    assert int((got.int() - expected.int()).abs().max()) <= 1
    assert float(got.float().std()) > 1.0


def test_the_decoder_rows_cannot_be_negative() -> None:
    nets = _networks()
    with pytest.raises(ValueError, match="decoder_rows"):
        FrameRenderer(nets.warp, nets.decoder, decoder_rows=-1)
    with pytest.raises(ValueError, match="decoder_rows"):
        EngineSettings(decoder_rows=-1)


def test_every_job_gets_its_frames_in_order_and_the_same_as_alone(
    engine: BatchedDittoEngine,
) -> None:
    portraits = [_portrait(1), _portrait(2), _portrait(1)]
    lengths, seeds = (75, 150, 231), (11, 12, 13)
    conds = [_cond(n, seed) for n, seed in zip(lengths, seeds, strict=True)]
    with engine.admitting():  # all three first windows in one motion batch
        handles = [engine.open_job(p, seed=s) for p, s in zip(portraits, seeds, strict=True)]
        for handle, cond in zip(handles, conds, strict=True):
            handle.feed(cond)
            handle.end()
    together = _read_all(handles)
    assert max(engine.batches["motion"]) == 3
    assert max(engine.batches["frames"]) == 4
    assert [len(frames) for frames in together] == list(lengths)
    assert together[0][0].shape == (16, 16, 3)
    assert together[0][0].dtype == torch.uint8
    for portrait, cond, seed, frames in zip(portraits, conds, seeds, together, strict=True):
        alone = _alone(engine, portrait, cond, seed)
        assert len(alone) == len(frames)
        difference = (torch.stack(frames).int() - torch.stack(alone).int()).abs()
        assert int(difference.max()) <= 1  # fp32 on the CPU: at most a rounding step
        assert float(difference.float().mean()) < 0.01
    # the frames carry the job: another seed and condition give other frames
    first = torch.stack(together[0][:75]).float()
    third = torch.stack(together[2][:75]).float()
    assert float((first - third).abs().mean()) > 1.0
    # and they move over the clip
    assert float((together[1][0].float() - together[1][-1].float()).abs().mean()) > 1.0


def test_a_condition_fed_in_pieces_gives_the_frames_it_gives_whole(
    engine: BatchedDittoEngine,
) -> None:
    portrait, cond = _portrait(3), _cond(170, 5)
    whole = _alone(engine, portrait, cond, 21)
    handle = engine.open_job(portrait, seed=21)
    frames: list[torch.Tensor] = []
    reader = threading.Thread(target=lambda: frames.extend(handle.frames()))
    reader.start()
    for start in range(0, 170, 33):
        handle.feed(cond[start : start + 33])
    handle.end()
    reader.join(timeout=60)
    assert len(frames) == 170
    assert all(torch.equal(a, b) for a, b in zip(frames, whole, strict=True))


def test_a_cancelled_job_ends_and_the_others_carry_on(engine: BatchedDittoEngine) -> None:
    with engine.admitting():
        gone = engine.open_job(_portrait(1), seed=1)
        kept = engine.open_job(_portrait(2), seed=2)
        gone.feed(_cond(200, 1))
        kept.feed(_cond(90, 2))
        kept.end()
    gone.cancel()
    frames = _read_all([gone, kept])
    assert len(frames[0]) < 200
    assert len(frames[1]) == 90


def test_a_failing_network_ends_every_running_job_with_its_error() -> None:
    engine = BatchedDittoEngine(
        _networks(decoder=Broken()), EngineSettings(buckets=(1, 2), steps=STEPS)
    )
    try:
        handles = [engine.open_job(_portrait(i), seed=i) for i in range(2)]
        for handle in handles:
            handle.feed(_cond(40, 0))
            handle.end()
        with pytest.raises(RuntimeError, match="decoder fell over"):
            _read_all(handles)
        with pytest.raises(RuntimeError, match="engine failed"):
            engine.open_job(_portrait(0), seed=0)
    finally:
        engine.close()


def test_closing_the_engine_ends_a_job_whose_audio_never_ended() -> None:
    engine = BatchedDittoEngine(_networks(), EngineSettings(buckets=(1, 2), steps=STEPS))
    handle = engine.open_job(_portrait(0), seed=0)
    handle.feed(_cond(100, 0))  # one whole window, then the audio stops coming
    frames: list[torch.Tensor] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            frames.extend(handle.frames())
        except RuntimeError as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    engine.close()
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert len(frames) == 70  # the window the audio covered was still rendered
    assert [str(e) for e in errors] == ["the batched Ditto engine was closed"]


def test_a_reader_that_falls_behind_holds_its_job_and_not_the_others() -> None:
    """Frames made and not read stay bounded (``max_unread``): the slow job waits, the
    others finish, and the slow job then gets every frame, in order, as it would alone."""
    settings = EngineSettings(buckets=(1, 2, 4), steps=STEPS, low_water=4, max_unread=8)
    engine = BatchedDittoEngine(_networks(), settings)
    try:
        alone = _alone(engine, _portrait(1), _cond(140, 1), 1)
        with engine.admitting():
            slow = engine.open_job(_portrait(1), seed=1)
            fast = engine.open_job(_portrait(2), seed=2)
            slow.feed(_cond(140, 1))
            fast.feed(_cond(140, 2))
            slow.end()
            fast.end()
        assert len(_read_all([fast])[0]) == 140  # finished while nobody read the slow job
        made = slow.stats.frames
        assert 8 <= made <= 8 + 4  # held at max_unread, give or take the batch that crossed it
        time.sleep(0.2)
        assert slow.stats.frames == made  # and nothing more is made for it meanwhile
        frames = _read_all([slow])[0]
        assert len(frames) == 140
        difference = (torch.stack(frames).int() - torch.stack(alone).int()).abs()
        assert int(difference.max()) <= 1  # batched with another job: a rounding step at most
    finally:
        engine.close()


def test_an_engine_needs_room_for_one_unread_frame() -> None:
    with pytest.raises(ValueError, match="max_unread"):
        EngineSettings(max_unread=0)


PACED = EngineSettings(buckets=(1, 2, 4), steps=STEPS, low_water=4, high_water=140)
"""Batches of 4: a paced job's burst (its first batch goes at once)."""


def test_a_paced_job_takes_its_pace_and_gets_the_frames_it_gets_unpaced() -> None:
    frames, rate = 150, 100.0  # the pace: (150 - 4) / 100 = 1.46 s from first to last frame
    portrait, cond = _portrait(4), _cond(frames, 4)
    unpaced = BatchedDittoEngine(_networks(), PACED)
    paced = BatchedDittoEngine(_networks(), dataclasses.replace(PACED, job_max_fps=rate))
    try:
        expected = _alone(unpaced, portrait, cond, 31)
        handle = paced.open_job(portrait, seed=31)
        handle.feed(cond)
        handle.end()
        got = _read_all([handle])[0]
        assert len(got) == frames
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
        first, last = handle.stats.first_frame, handle.stats.last_frame
        assert first is not None
        assert last is not None
        pace = (frames - 4) / rate
        assert last - first >= pace - 0.05  # the first batch's render time, give or take
        assert last - first < pace + 2.0  # the driver wakes when frames may go
        assert paced.batches["frames"] == unpaced.batches["frames"]  # batches not shrunk
        assert paced.batches["frames"][4] == frames // 4
    finally:
        unpaced.close()
        paced.close()


def test_closing_the_engine_finishes_a_paced_jobs_frames_without_its_pace() -> None:
    """Closing finishes the work that waits (``close``): an ended job's reader gets all its
    frames at once, not after the seconds its pace would take."""
    frames, rate = 150, 20.0  # paced, the last frame 7.3 s after the first
    portrait, cond = _portrait(5), _cond(frames, 5)
    unpaced = BatchedDittoEngine(_networks(), PACED)
    try:
        expected = _alone(unpaced, portrait, cond, 41)
    finally:
        unpaced.close()
    # the reader is never behind enough to hold the job: only the pace keeps its frames
    settings = dataclasses.replace(PACED, job_max_fps=rate, max_unread=1000)
    engine = BatchedDittoEngine(_networks(), settings)
    handle = engine.open_job(portrait, seed=41)
    handle.feed(cond)
    handle.end()
    got: list[torch.Tensor] = []
    reader = threading.Thread(target=lambda: got.extend(handle.frames()))
    reader.start()
    deadline = time.perf_counter() + 10
    while handle.stats.frames < 8 and time.perf_counter() < deadline:
        time.sleep(0.01)  # two batches out: the second one waited for the pace
    made = handle.stats.frames
    assert 8 <= made < 16
    began = time.perf_counter()
    engine.close()
    reader.join(timeout=30)
    closing = time.perf_counter() - began
    assert not reader.is_alive()
    assert closing < (frames - made - 4) / rate / 4  # well before the pace (~6.5 s)
    assert len(got) == frames
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


@pytest.mark.parametrize("rate", [-1.0, math.nan, math.inf])
def test_an_engine_refuses_a_negative_or_non_finite_job_pace(rate: float) -> None:
    with pytest.raises(ValueError, match="job_max_fps"):
        EngineSettings(job_max_fps=rate)
