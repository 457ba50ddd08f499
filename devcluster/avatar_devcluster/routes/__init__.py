"""The dev cluster's HTTP routes, one module per area of the API.

``discovery`` answers what kubectl and kopf ask before anything else (the
groups, the resources, OpenAPI), ``objects`` reads and writes objects,
``watches`` streams their changes; ``requests`` is what all three read from a
request, ``media`` how they read its body and pick the answer's media type
(with ``protobuf``, the wire format where kubectl speaks nothing else). They
translate HTTP into calls on :class:`~avatar_devcluster.cluster.Cluster`, each
imports no sibling but those three, and ``app`` puts them on one server.
"""
