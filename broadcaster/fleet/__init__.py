"""The speakers as a fleet: registry, presence and uptime, health, alarms, commands."""
