"""Sizing runtime pools: the pure policy, and the signals it reads (Prometheus or the pods).

``policy`` is a pure function of what a pool looks like now and what it remembers, so
the operator and the fleet simulator run the very same code.
"""
