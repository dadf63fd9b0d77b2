"""Fault scripts: kill -9 under load (kill9) and long runs with churn (soak)."""
