"""The platform: settings, database, logging, errors, metrics, HTTP plumbing.

The bottom layer: it knows no domain and imports nothing else of the bridge.
"""
