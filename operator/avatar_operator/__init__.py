"""The AvatarVideo operator: resource → queue → dispatcher → runtime API → status.

Run it with ``kopf run -m avatar_operator.handlers``. The modules follow a job's
path: ``resource`` reads the AvatarVideo, ``queue`` orders the waiting ones,
``pods`` knows the runtime pods and their free slots, ``dispatcher`` matches the
two, ``runtime_client`` speaks the runtime's HTTP API, ``tracking`` follows one
attempt on one pod, ``status`` writes what happened back to the resource.
"""
