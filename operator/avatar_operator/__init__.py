"""The AvatarVideo operator: resource → queue → dispatcher → runtime API → status.

Run it with ``kopf run -m avatar_operator.handlers``. The modules follow a job's
path: ``handlers`` (kopf's events, wiring only) hand resources to the
``dispatcher``, which reads them (``resource``), keeps each as a ``jobs.Job``,
orders the waiting ones (``queue``) and matches them with runtime pods that have
free slots (``pods``). ``attempts`` sends one attempt and decides what follows it,
``tracking`` follows it on its pod through ``runtime_client``, ``reporting`` writes
status (``status`` says what) and Events through ``kube``; ``timers`` runs deadlines
and TTLs. ``settings``, ``metrics`` and ``estimate`` serve them all.
"""
