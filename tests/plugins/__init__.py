"""Pytest plugins shared by the test suites (load with `pytest_plugins` or `-p`)."""
