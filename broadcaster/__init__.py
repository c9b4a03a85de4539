"""The control plane: app factory, API, store, dispatcher, broker, command line."""

from __future__ import annotations
