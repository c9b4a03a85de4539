"""Places: provinces, communes, hamlets and zones (service and routes)."""
