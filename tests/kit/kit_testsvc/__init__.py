"""Test-only services for the kit's tests (importable as a `services`-like package)."""
