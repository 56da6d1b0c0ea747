"""Redis (redis-py asyncio) adapters for sessions and rate limits."""
