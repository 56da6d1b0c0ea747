"""Outgoing mail: templates, the persistent queue, SMTP and outbox transports, the delivery worker."""
