"""Speakers as a fleet; may import store, places, broadcasts, settings, services, web, auth, ui."""
