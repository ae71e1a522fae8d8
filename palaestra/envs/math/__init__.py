"""Math environments (registered on import)."""
