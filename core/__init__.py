"""Shared infrastructure for the API, activities and workers: settings, database, logging, crypto, Temporal client.

Workflows never import this package: it does I/O and reads the environment.
"""
