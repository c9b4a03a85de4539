"""Places, their names, targeting and routes; may import store, web, auth, services."""
