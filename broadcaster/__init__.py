"""The control plane: a package per capability; at this top only the wiring (app, cli, settings)."""

from __future__ import annotations
