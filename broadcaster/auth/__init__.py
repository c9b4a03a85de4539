"""Who may do what: accounts, roles, areas (scopes), sessions, tokens and the audit log."""
