"""Programmes: CRUD, approval, conflicts, prefetch plans, routes; may use schedules/, not wiring."""
