"""Text formats: queue.md import and export, field values, Jinja templates."""
