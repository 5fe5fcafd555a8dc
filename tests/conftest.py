"""Shared test configuration: pytester, to test the recipe plugin as pytest runs it."""

pytest_plugins = ["pytester"]
