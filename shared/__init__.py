"""Code every service shares: settings, storage, messages, topology, the offer hub."""
