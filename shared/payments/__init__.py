"""Payments: what the system and its payment provider (the sandbox plays one) agree on."""
