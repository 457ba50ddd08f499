"""The runtime pod's HTTP API: ``schemas`` (the contract), ``app`` (routes)."""
