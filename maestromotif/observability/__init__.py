"""Observability as code: the Grafana dashboard (``dashboard``) and helpers that read PromQL
out of the dashboard and the Prometheus rules (``promql``)."""
