"""The runtime's contract with the outside: what crosses the wire, and nothing else.

``errors`` holds the stable error codes (the runtime's and the operator's), ``jobs``
what a job asks for and returns (the CLI's and the HTTP API's common core), and
``schemas`` the HTTP bodies. The operator imports this package and no other part of
the runtime, so it stays pydantic models and enums only (``.importlinter`` checks it).
"""
