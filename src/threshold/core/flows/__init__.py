"""Flows decide: sign-in (first step, pending second step, completion), step-up, factor settings,
operator-approved recovery. Each ends in one outcome value (`outcome.py`) that each surface (JSON API,
hosted pages, OIDC) applies with one function of its own."""
