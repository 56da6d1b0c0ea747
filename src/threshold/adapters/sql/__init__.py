"""SQLAlchemy 2 (async) persistence for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""
