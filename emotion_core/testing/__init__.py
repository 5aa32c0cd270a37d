"""Tiny random-weight model files in the exact real formats, for tests and demos."""
