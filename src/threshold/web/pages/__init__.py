"""Hosted pages: server-rendered, no JavaScript needed, themable."""
