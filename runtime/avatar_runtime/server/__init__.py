"""The runtime pod's HTTP side: ``app`` (the FastAPI routes), ``serve`` (the process)."""
