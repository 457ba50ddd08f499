{{/*
Reserved for the monitoring issue (alert rules and dashboards), beside monitoring.yaml:

- monitoring.prometheusRule: {enabled, additionalLabels, ...}: a PrometheusRule in a
  template of its own, carrying the same release label as the monitors above
  (kube-prometheus-stack selects rules the way it selects monitors).
- monitoring.dashboards: {enabled, additionalLabels, ...}: one ConfigMap per JSON file
  under files/dashboards/, loaded with .Files.Get and labelled grafana_dashboard: "1"
  (what Grafana's dashboard sidecar loads).

Their values are not in values.yaml yet: the schema refuses them until they do something.
*/}}
