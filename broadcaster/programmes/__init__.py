"""Programmes and routes; may import schedules, store, places, broadcasts, settings, web, auth."""
