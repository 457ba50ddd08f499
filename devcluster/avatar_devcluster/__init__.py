"""A local Kubernetes API for the demo and the end-to-end tests.

The real ``kubectl`` and the real ``kopf run`` talk to it over HTTP as they would
to GKE's API server: discovery, CRUD with the API server's metadata rules,
watches, Table output, status subresources, CRD admission. It is the project's
stand-in for a cluster where no kube-apiserver can be installed.
"""

__version__ = "0.1.0"
