"""Helpers shared by drkit's tests (real servers started and stopped per test run)."""
