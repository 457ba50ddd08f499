"""The batched Ditto engine: one driver thread, one copy of the networks, every job's frames.

Jobs open a ``JobHandle``, feed it their audio condition as the speech comes
(``feed``, then ``end``) and read their frames from it, in order, as the engine
makes them (``frames``). The engine's one driver thread asks the scheduler
(``scheduler.BatchScheduler``) for the next batch and runs it on the GPU:

- a motion batch: the waiting windows of several jobs through LMDM at once, the
  guidance folded (``diffusion.FoldedSampler``); each job's motion is then
  blended into its track (``motion.MotionTrack``) and turned into driving
  keypoints for the window's frames (``keypoints.PortraitMotion``, with Ditto's
  stitching network), and those frames join the job's queue;
- a frames batch: frames of several jobs warped and decoded together
  (``frames.FrameRenderer``), then handed to each job's reader.

Tensors stay on the GPU from the audio condition to the frame; each frames
batch's copies to the host are queued behind it (``host.to_host``), and a frame
reaches its reader as a uint8 (height, width, 3) tensor on the host when its
own batch's copy is done. A job whose reader falls ``max_unread`` frames
behind is held until it catches up. Compilation and graph capture happen in
the constructor (at pod start), never in a job. One lock guards the scheduler
and the jobs' tracks; the networks run outside it, so feeding a job never
waits for a batch to finish (only for a window's small bookkeeping: fusion,
keypoints, stitching).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NewType

from avatar_runtime.engines.ditto_batched import buckets as buckets_
from avatar_runtime.engines.ditto_batched import scheduler as scheduler_
from avatar_runtime.engines.ditto_batched.host import to_host
from avatar_runtime.engines.ditto_batched.motion import MotionTrack, WindowInput

if TYPE_CHECKING:
    import torch

    from avatar_runtime.engines.ditto_batched.keypoints import PortraitMotion
    from avatar_runtime.engines.ditto_batched.networks import DittoNetworks
    from avatar_runtime.engines.ditto_batched.putback import Backdrop

log = logging.getLogger(__name__)

JobId = NewType("JobId", int)


@dataclass(frozen=True)
class EngineSettings:
    """How the engine batches and how it prepares the networks."""

    buckets: tuple[int, ...] = buckets_.DEFAULT_BUCKETS
    """Batch sizes compiled and captured for (frames and windows alike); the largest caps
    each batch."""
    compiled: bool = False
    """``torch.compile`` warp + decode, one specialisation per bucket, at load."""
    graphed: bool = False
    """CUDA graphs per bucket: warp + decode, and LMDM's whole 50-step loop."""
    steps: int = 50
    """DDIM steps per window (Ditto's default)."""
    lmdm_half: bool = False
    """LMDM's denoiser in fp16 autocast; Ditto runs it in fp32 (off: Ditto's numerics)."""
    spectral_mask: bool = False
    """The dense-motion network's 7 x 7 x 7 mask convolution through FFTs, in fp32
    (``spectral.SpectralConv3d``): the same function, more exact than the fp16 cuDNN
    kernel it replaces, for about 1.6 GB of GPU memory (its kernel's spectrum and a
    batch's intermediates). The runtime's ``engines.ditto_spectral_mask`` turns it on."""
    decoder_rows: int = 2
    """Rows Ditto's decoder takes at once inside a batch (0: the whole batch): its
    intermediates at a batch of 8 are most of the graphs' memory pool (``frames``)."""
    low_water: int = 8
    high_water: int = 140
    max_unread: int = 64
    """Frames made for a job and not yet read: from here the job is held (nothing of it
    is batched) until its reader has taken half of them. 64 frames are 2.6 s of video
    and 50 MB of host memory at 512 x 512: a slow encoder cannot make a job's whole
    video pile up there, nor hold memory that other jobs need."""
    job_max_fps: float = 0.0
    """Most frames a second any one job gets (0: no cap). A lone job otherwise takes the
    whole GPU: a cap trades its speed for a latency that depends less on the load
    (``scheduler.Limits.frames_per_second``)."""

    def __post_init__(self) -> None:
        if self.max_unread < 1:
            raise ValueError("max_unread must be at least 1")
        if self.decoder_rows < 0:
            raise ValueError("decoder_rows must be 0 (the whole batch) or more")
        if not 0 <= self.job_max_fps < float("inf"):  # nan too
            raise ValueError("job_max_fps must be 0 (no cap) or a positive rate")

    def limits(self) -> scheduler_.Limits:
        top = max(self.buckets)
        return scheduler_.Limits(
            max_windows=top,
            max_frames=top,
            low_water=self.low_water,
            high_water=self.high_water,
            frames_per_second=self.job_max_fps,
        )


@dataclass(frozen=True)
class Portrait:
    """What a job needs of its registered portrait."""

    feature: torch.Tensor
    """(1, 32, 16, 64, 64): the appearance features Ditto's warp moves."""
    motion: PortraitMotion
    backdrop: Backdrop | None = None
    """Where its crops go back into the whole portrait (``putback.Backdrop``); None: the
    job's frames are the crops."""


@dataclass(frozen=True)
class _Frame:
    index: int
    kp_driving: torch.Tensor  # (21, 3)


_END = object()


@dataclass
class JobStats:
    opened: float
    first_frame: float | None = None
    last_frame: float | None = None
    frames: int = 0
    windows: int = 0


@dataclass
class _Job:
    id: JobId
    portrait: Portrait
    track: MotionTrack
    output: queue.Queue[Any]
    stats: JobStats
    first_motion: torch.Tensor | None = None
    made: int = 0
    pending_frames: int = 0
    unread: int = 0
    """Frames handed to the job's queue and not yet taken by its reader."""
    cancelled: bool = False


class JobHandle:
    """One job's side of the engine: feed audio condition, read frames."""

    def __init__(self, engine: BatchedDittoEngine, job: _Job) -> None:
        self._engine = engine
        self._job = job
        self.id = job.id

    @property
    def stats(self) -> JobStats:
        return self._job.stats

    def feed(self, cond: torch.Tensor) -> None:
        """Audio condition (frames, width) on the engine's device, in order."""
        self._engine._feed(self._job, cond)

    def end(self) -> None:
        self._engine._end(self._job)

    def cancel(self) -> None:
        self._engine._cancel(self._job)

    def frames(self) -> Iterator[torch.Tensor]:
        """The job's frames in order, each (height, width, 3) uint8 on the host, as they are
        made; ends after the last (raises what stopped the engine, if anything did)."""
        while True:
            item = self._job.output.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            self._engine._taken(self._job)
            yield item.ready()


class BatchedDittoEngine:
    def __init__(self, networks: DittoNetworks, settings: EngineSettings | None = None) -> None:
        import torch as torch_  # only where the engine runs; the module imports without it

        from avatar_runtime.engines.ditto_batched.diffusion import FoldedSampler
        from avatar_runtime.engines.ditto_batched.frames import FrameRenderer

        self.settings = settings or EngineSettings()
        began = time.perf_counter()
        self.networks = networks
        graphed = self.settings.graphed and torch_.cuda.is_available()
        # One memory pool for all the engine's graphs: the driver thread replays one graph
        # at a time, on one stream, and copies its output out before the next replay, so
        # no two graphs' intermediates are ever live together. A pool per graph keeps the
        # sum of every bucket's intermediates, not the largest (compiled on the H200: 9.0 GB
        # for the renderer with a pool per graph, 5.3 GB with one).
        pool = torch_.cuda.graph_pool_handle() if graphed else None
        if self.settings.spectral_mask:
            from avatar_runtime.engines.ditto_batched import spectral

            spectral.swap_mask(networks.warp.dense_motion_network)
            if torch_.cuda.is_available():
                torch_.cuda.empty_cache()  # the spectrum's temporaries, before any graph
        self.sampler = FoldedSampler(
            networks.lmdm,
            steps=self.settings.steps,
            buckets=self.settings.buckets,
            graphed=self.settings.graphed,
            half=self.settings.lmdm_half,
            pool=pool,
        )
        self.renderer = FrameRenderer(
            networks.warp,
            networks.decoder,
            buckets=self.settings.buckets,
            compiled=self.settings.compiled,
            graphed=self.settings.graphed,
            decoder_rows=self.settings.decoder_rows,
            pool=pool,
        )

        if torch_.cuda.is_available() and self.settings.graphed:
            # Compiling and capturing leave gigabytes in the allocator's cache that no batch
            # uses again (the graphs keep their own pools); the node's NVML counts them.
            torch_.cuda.empty_cache()
        self.prepare_seconds = time.perf_counter() - began
        """Building, compiling and capturing: load time, not any job's."""
        self._lock = threading.Condition()
        self._scheduler: scheduler_.BatchScheduler[JobId, WindowInput, _Frame] = (
            scheduler_.BatchScheduler(self.settings.limits())
        )
        self._jobs: dict[JobId, _Job] = {}
        self._ids = itertools.count()
        self._failure: BaseException | None = None
        self._stopped = False
        self.batches: dict[str, collections.Counter[int]] = {
            "motion": collections.Counter(),
            "frames": collections.Counter(),
        }
        """How many batches of each size ran, by kind (what benchmarks and the scaling
        policy read: the batch mix sets the throughput)."""
        self._driver = threading.Thread(target=self._drive, name="ditto-batched", daemon=True)
        self._driver.start()

    @contextlib.contextmanager
    def admitting(self) -> Iterator[None]:
        """Hold the driver back while several jobs open and feed, so that their first
        windows share one batch (jobs that arrive together, as at a pod's start)."""
        with self._lock:
            yield

    def open_job(self, portrait: Portrait, *, seed: int) -> JobHandle:
        import torch

        device = portrait.feature.device
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        with self._lock:
            if self._failure is not None:
                raise RuntimeError("the batched Ditto engine failed") from self._failure
            job = _Job(
                id=JobId(next(self._ids)),
                portrait=portrait,
                track=MotionTrack(
                    kp_cond=portrait.motion.source,
                    generator=generator,
                    window=self.sampler.frames,
                ),
                output=queue.Queue(),
                stats=JobStats(opened=time.perf_counter()),
            )
            self._jobs[job.id] = job
            self._scheduler.add_job(job.id)
        return JobHandle(self, job)

    def _feed(self, job: _Job, cond: torch.Tensor) -> None:
        with self._lock:
            job.track.feed(cond)
            self._offer_next(job)

    def _taken(self, job: _Job) -> None:
        """The reader took a frame: a held job goes on once half its backlog is read."""
        with self._lock:
            job.unread -= 1
            if job.unread == self.settings.max_unread // 2 and job.id in self._scheduler:
                self._scheduler.release(job.id)  # nothing changes unless it was held
                self._lock.notify_all()

    def _end(self, job: _Job) -> None:
        with self._lock:
            job.track.end()
            self._offer_next(job)
            self._finish_if_done(job)

    def _cancel(self, job: _Job) -> None:
        with self._lock:
            job.cancelled = True
            self._scheduler.remove_job(job.id)
            self._jobs.pop(job.id, None)
            job.output.put(_END)

    def close(self) -> None:
        """Finish the work that waits (unpaced), stop the driver, and end the jobs still open
        with an error: their audio never ended, or (held, their reader behind) the rest of
        their frames would pile the whole video up in host memory."""
        with self._lock:
            self._stopped = True
            self._lock.notify_all()
        self._driver.join()
        with self._lock:
            for job in self._jobs.values():
                job.output.put(RuntimeError("the batched Ditto engine was closed"))
            self._jobs.clear()

    def _offer_next(self, job: _Job) -> None:
        if job.cancelled or job.id not in self._scheduler:
            return
        has_window, _ = self._scheduler.waiting(job.id)
        if has_window:
            return
        window = job.track.next_window()
        if window is not None:
            self._scheduler.offer_window(job.id, window)
            self._lock.notify_all()

    def _finish_if_done(self, job: _Job) -> None:
        if job.track.done and job.pending_frames == 0 and job.id in self._jobs:
            self._scheduler.remove_job(job.id)
            del self._jobs[job.id]
            job.output.put(_END)

    def _drive(self) -> None:
        try:
            while True:
                with self._lock:
                    batch = self._next_batch()
                    while batch is None and not self._stopped:
                        wake = self._scheduler.ready_at()
                        timeout = None if wake is None else max(0.0, wake - time.perf_counter())
                        self._lock.wait(timeout)
                        batch = self._next_batch()
                    if batch is None:
                        return
                if batch.kind is scheduler_.BatchKind.MOTION:
                    self._run_motion(batch)
                else:
                    self._run_frames(batch)
        except BaseException as exc:
            log.exception("the batched Ditto engine failed")
            with self._lock:
                self._failure = exc
                for job in self._jobs.values():
                    job.output.put(exc)
                self._jobs.clear()

    def _next_batch(self) -> scheduler_.Batch[JobId, WindowInput, _Frame] | None:
        """Paced by the clock while running; closing, the work that waits goes unpaced."""
        return self._scheduler.next_batch(None if self._stopped else time.perf_counter())

    def _run_motion(self, batch: scheduler_.Batch[JobId, WindowInput, _Frame]) -> None:
        import torch

        windows = [w for _, w in batch.windows]
        self.batches["motion"][len(windows)] += 1
        motion = self.sampler.sample(
            torch.stack([w.kp_cond for w in windows]),
            torch.stack([w.aud_cond for w in windows]),
            torch.stack([w.noise for w in windows]),
        )
        with self._lock:
            for row, (job_id, window) in enumerate(batch.windows):
                job = self._jobs.get(job_id)
                if job is None:
                    continue  # cancelled while its window was diffused
                shown = job.track.accept(window, motion[row])
                if job.first_motion is None:
                    job.first_motion = shown[0].clone()
                kp_driving = job.portrait.motion.drive(
                    shown, job.first_motion, self.networks.stitch
                )
                frames = [_Frame(job.made + i, kp_driving[i]) for i in range(shown.shape[0])]
                job.made += len(frames)
                job.pending_frames += len(frames)
                job.stats.windows += 1
                self._scheduler.offer_frames(job_id, frames)
                self._offer_next(job)
                self._finish_if_done(job)

    def _run_frames(self, batch: scheduler_.Batch[JobId, WindowInput, _Frame]) -> None:
        import torch

        self.batches["frames"][len(batch.frames)] += 1
        with self._lock:
            jobs = [self._jobs.get(job_id) for job_id, _ in batch.frames]
        live = [(job, frame) for job, (_, frame) in zip(jobs, batch.frames, strict=True) if job]
        if not live:
            return
        images = self.renderer.render(
            torch.cat([job.portrait.feature for job, _ in live]),
            torch.stack([job.portrait.motion.x_s for job, _ in live]),
            torch.stack([frame.kp_driving for _, frame in live]),
        )
        images = self._put_back(images, [job.portrait.backdrop for job, _ in live])
        host = to_host(images)
        now = time.perf_counter()
        with self._lock:
            for row, (job, _) in enumerate(live):
                if job.cancelled:
                    continue
                job.output.put(host[row])
                job.unread += 1
                if job.unread >= self.settings.max_unread and job.id in self._scheduler:
                    self._scheduler.hold(job.id)
                job.pending_frames -= 1
                job.stats.frames += 1
                job.stats.last_frame = now
                if job.stats.first_frame is None:
                    job.stats.first_frame = now
            for job in {job.id: job for job, _ in live}.values():
                self._finish_if_done(job)

    @staticmethod
    def _put_back(images: torch.Tensor, backdrops: list[Backdrop | None]) -> Any:
        """Each row's crop into its portrait, the rows of one portrait in one call; rows
        of portraits without a backdrop stay crops. A list where the sizes differ."""
        if all(b is None for b in backdrops):
            return images
        out: list[Any] = list(images)
        groups: dict[int, list[int]] = {}
        for row, backdrop in enumerate(backdrops):
            if backdrop is not None:
                groups.setdefault(id(backdrop), []).append(row)
        for rows in groups.values():
            backdrop = backdrops[rows[0]]
            assert backdrop is not None
            pasted = backdrop.paste(images[rows])
            for i, row in enumerate(rows):
                out[row] = pasted[i]
        return out
