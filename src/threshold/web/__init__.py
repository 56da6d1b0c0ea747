"""HTTP surfaces: JSON API, hosted pages, health and metrics. create_app() is the composition root."""
