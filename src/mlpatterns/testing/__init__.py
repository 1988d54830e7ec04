"""Conformance suites that every backend's tests run."""
