"""The domain: accounts, passwords, sessions, rate limits and audit.

Imports no web framework, database or Redis code (checked by tests/unit/test_import_contract.py).
"""
