"""aerich migrations (one folder per Tortoise app); the only way the schema changes."""
