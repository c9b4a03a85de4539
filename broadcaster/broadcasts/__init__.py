"""Broadcasts on air, ledger, routes; may import store, places, settings, services, web, auth."""
