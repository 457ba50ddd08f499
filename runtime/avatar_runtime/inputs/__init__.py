"""Getting a job's inputs safely: fetch bytes from wherever the spec points, then validate.

Everything here treats its input as hostile (it comes from whoever can create an
AvatarVideo), so each step enforces a size limit and turns every failure into a
``JobError`` the user can act on.

- ``urls``: the checks on an input URL made before any connection (allowed
  schemes, public addresses; ``precheck`` at admission) and how errors name it.
- ``fetching``: ``fetch_bytes``, the one entry point; reads local files and ``gs://``.
- ``https``: the http(s) transfer that connects only to the checked address,
  re-checks redirects and stops at the size limit.
- ``portrait``, ``speech``, ``voice``: turn the fetched bytes (or the text) into what
  the engines take, refusing what they cannot use.
"""
