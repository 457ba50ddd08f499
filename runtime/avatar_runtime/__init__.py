"""The AvatarVideo runtime: portrait + speech in, lip-synced MP4, captions and thumbnail out.

The package is laid out in the order data flows through a job:
``inputs`` (fetch and validate) → ``engines`` (TTS, ASR, renderer) → ``pipeline``
(stage orchestration, captions, encoding, storage). ``cli`` is the command line.
"""

__version__ = "0.1.0"
