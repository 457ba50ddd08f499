"""One job, from fetched inputs to published files.

``runner`` holds ``Pipeline``, which runs a job's stages on the shared engines and
hands each the job's ``context``. Around it, a module per step: ``speech_feed``
(streamed speech to a streaming renderer), ``frame_loop`` (frames to MP4 for either
render path, through ``encoding``), ``listening`` (the ASR and the ``intelligibility``
check), ``captions``, ``audio`` (resampling) and ``storage`` (scratch space, all-or-none
publishing).
"""
