"""Adapters implementing the core ports: SQL (SQLAlchemy 2), Redis, key files."""
