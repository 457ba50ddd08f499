{{/*
The operator's permissions: exactly the calls it makes, nothing more (no wildcards).
Three sets, by where the calls go:

- "framework": kopf's own discovery, cluster-scoped: it watches the CRDs to notice its
  resources appear (kopf/_core/reactor/observation.py, resource_observer) and, in
  namespaced mode only, the namespaces to match its --namespace list (namespace_observer).
- "watched": in every namespace the operator watches (all of them in cluster-wide mode):
  kopf's watches of AvatarVideos, pools and pods (operator/avatar_operator/handlers.py),
  kopf's finalizer and progress annotations on AvatarVideos (patch), the dispatcher's
  status writes, TTL deletes and Events (operator/avatar_operator/kube.py), and the status
  of a pool the operator refuses to run outside its namespace.
- "runtime": in the release namespace only, where the runtime pods, the pools and their
  Deployments live (kube.py: pod reads and annotations, the pools' Deployments).
*/}}

{{- define "avatar-video.rbac.framework" -}}
# kopf: notice CRDs appearing and going (list, then watch).
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if .Values.operator.watchNamespaces }}
# kopf, namespaced mode only: match the --namespace list against the cluster's namespaces.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- end }}

{{- define "avatar-video.rbac.watched" -}}
# kopf: watch AvatarVideos (list, watch); kopf's finalizer and progress annotations (patch);
# the dispatcher's TTL deletes (kube.py Kube.delete).
- apiGroups: [avatar.dev]
  resources: [avatarvideos]
  verbs: [list, watch, patch, delete]
# The dispatcher's status writes (kube.py Kube.patch_status, a merge patch on /status).
- apiGroups: [avatar.dev]
  resources: [avatarvideos/status]
  verbs: [patch]
# kopf: watch pools (the scaling loop's events).
- apiGroups: [avatar.dev]
  resources: [avatarruntimepools]
  verbs: [list, watch]
# The scaling loop's pool status (kube.py Kube.patch_pool_status), also the refusal of a
# pool outside the operator's namespace.
- apiGroups: [avatar.dev]
  resources: [avatarruntimepools/status]
  verbs: [patch]
# kopf: watch pods (the runtime pods' events; kopf filters by the pool label itself).
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# Events on AvatarVideos: kopf's warnings (create), the dispatcher's steps (kube.py
# Kube.event creates, Kube.repeat_event counts one more with a patch).
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{- define "avatar-video.rbac.runtime" -}}
# Tracking reads a runtime pod (kube.py Kube.pod); the scaling loop annotates pods with
# their deletion cost and safe-to-evict (Kube.annotate_pod).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, patch]
# The pools' Deployments (kube.py: deployments lists, create_deployment, patch_deployment
# and replace_template patch, delete_deployment).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, create, patch, delete]
# No request uses this: the API server checks it when a Deployment names its pool as owner
# with blockOwnerDeletion (pools/resource.py owner_reference), on clusters that run the
# OwnerReferencesPermissionEnforcement admission plugin.
- apiGroups: [avatar.dev]
  resources: [avatarruntimepools/finalizers]
  verbs: [update]
{{- end }}
