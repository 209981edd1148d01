"""The sandbox's payment provider: payments the system creates, the page people pay on, and the
signed callbacks that report the outcome (wire contract in ``api.py``)."""
