"""Benchmarks: the webhook pipeline against a bare hand-written handler."""
