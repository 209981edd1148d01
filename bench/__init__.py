"""Reproducible load benchmarks (issue 6): overhead, throughput, raw limits, WebSockets, load generator.

Every benchmark makes its own database and RabbitMQ vhost and removes them, starts its
own processes on free ports, and stops by itself. Timings live here, never in tests.
"""
