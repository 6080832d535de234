"""What the running server tells its operators: Prometheus metrics, and a request id on
every response and every log line."""
