"""The AvatarVideo runtime: portrait + speech in, lip-synced MP4, captions and thumbnail out.

The package is layered so that each part imports only those below it (``.importlinter``
checks the order), from the bottom: ``api`` is the contract with the outside (error codes,
what a job asks for and returns, the HTTP bodies) and the one part the operator imports;
``engines`` puts the models (TTS, ASR, renderer) behind small interfaces; ``inputs``
fetches and validates what a job points at; ``pipeline`` runs one job through them, from
inputs to published files; ``service`` is a pod's long-lived side (the job board, the
slots that run jobs, loading and draining); ``server`` holds the FastAPI app and the
serving process; ``cli`` is the command line. Outside the layers: ``settings`` (every
knob), ``logs``, ``metrics``, ``gpu`` and ``local_buckets``.
"""

__version__ = "0.1.0"
