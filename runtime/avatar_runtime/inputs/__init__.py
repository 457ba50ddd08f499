"""Getting a job's inputs safely: fetch bytes from wherever the spec points, then validate.

Everything here treats its input as hostile (it comes from whoever can create an
AvatarVideo), so each step enforces a size limit and turns every failure into a
``JobError`` the user can act on.

- ``characters``: code points no input may hold (lone surrogates, non-characters,
  control characters in URLs and names), and messages that quote input safely.
- ``urls``: the one URL parser admission and the fetchers share (``parse``), the
  checks made before any connection (allowed schemes, public addresses in every
  spelling; ``precheck`` at admission) and how errors name an input.
- ``fetching``: ``fetch_bytes``, the one entry point; reads local files and ``gs://``.
- ``https``: the http(s) transfer that connects only to the checked address,
  re-checks redirects and stops at the size limit.
- ``portrait``, ``speech``, ``voice``: turn the fetched bytes (or the text) into what
  the engines take, refusing what they cannot use.
"""
