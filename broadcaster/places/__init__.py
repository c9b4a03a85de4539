"""Places, their names, targeting and routes; may import store, web and auth."""
