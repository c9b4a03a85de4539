"""The store (SQLite through sqlite-utils) and its migrations; may import devices/ and loa
only."""
