"""Insurer sandbox: simulated insurers that quote with the real OSAGO tariff."""
