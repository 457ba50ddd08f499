"""Ditto batched across jobs: one copy of its networks per GPU, serving every slot.

Where the adapter (``engines/ditto_renderer.py``) runs one Ditto ``StreamSDK``
per slot, each a chain of Python threads launching one frame's kernels at a
time, this engine drives Ditto's network modules itself and batches the work of
all running jobs: motion-diffusion windows (guidance folded into the batch),
then warp + decode of frames from any jobs, optionally compiled and captured as
CUDA graphs per batch-size bucket at load. Modules, one job each:

- ``scheduler``: which jobs' work goes into the next batch (fair, in order);
- ``buckets``: the batch sizes prepared at load, and padding to them;
- ``capture``: device-side stand-ins for Ditto's capture-hostile helpers;
- ``networks``: Ditto's modules loaded from the model volume;
- ``diffusion``: LMDM over a batch of windows, guidance folded;
- ``motion``: one job's windows and its frames' motion;
- ``keypoints``: motion to driving keypoints (and Ditto's stitching), batched;
- ``frames``: warp + decode of a batch of frames;
- ``putback``: the crops back into their portraits, batched, on the GPU;
- ``engine``: the driver thread and the jobs' handles;
- ``conditions``: speech, as it arrives, to Ditto's HuBERT features and condition rows;
- ``renderer``: all of it behind the runtime's renderer interface, one instance for
  every slot of a pod (``engines.ditto_batched``).

Nothing here imports torch until it is used, so the package imports where torch
is not installed (the operator's image, CI's lint jobs).
"""

from avatar_runtime.engines.ditto_batched.engine import (
    BatchedDittoEngine,
    EngineSettings,
    JobHandle,
    Portrait,
)
from avatar_runtime.engines.ditto_batched.scheduler import BatchScheduler, Limits

__all__ = [
    "BatchScheduler",
    "BatchedDittoEngine",
    "EngineSettings",
    "JobHandle",
    "Limits",
    "Portrait",
]
