"""The SQLite store, its row types and migrations; imports nothing else of broadcaster/."""
