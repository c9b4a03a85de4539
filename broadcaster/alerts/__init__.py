"""Emergency alerts: the model and templates, CAP 1.2 in and out, the service, the API."""
