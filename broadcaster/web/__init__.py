"""HTTP plumbing all routes share; may import services (the typed bundle) only."""
