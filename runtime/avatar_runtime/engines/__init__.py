"""Model engines behind small interfaces (``base``), built by name (``registry``)."""
