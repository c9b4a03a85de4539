"""The media library and its routes; may import store, web, auth, settings, services."""
