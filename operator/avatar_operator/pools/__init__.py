"""AvatarRuntimePools: the pods the operator runs for a pool, and the loop that sizes them.

``resource`` reads the pool (defaults equal to the CRD's); ``deployments`` builds its
Deployments (pure); ``victims`` says which pods go and what their annotations say
(pure); ``status`` writes what the pool's status shows (pure); ``rollout`` brings the
Deployments to the spec; ``arrivals`` measures what arrives at each pool; ``missing``
tells videos that their pool exists nowhere; ``scaler`` is the loop that ties them to
the policy (``scaling.policy``), the signals (``scaling.signals``) and the Kubernetes
API. Pools are opt-in per pool name: a name no pool declares keeps its hand-made pods,
dispatched to and never scaled.
"""
