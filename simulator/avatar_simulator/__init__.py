"""A discrete-event simulator of a GKE L4 fleet, driven by the operator's own scaling policy.

The fleet cannot be rented here, so it is simulated: arrivals (``arrivals``), service
times from measured figures (``service``), nodes with provisioning lag, spot
preemptions and per-second billing (``fleet``), the event loop (``engine``), the policy
under test (``controllers``, calling ``avatar_operator.scaling.policy``) and what it is
measured against (``baselines``), scenarios (``scenarios``), figures, JSON and plots
(``report``); ``make simulate`` runs ``cli``. Method and results: docs/scaling.md.
"""
