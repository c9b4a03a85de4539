"""Starting, supervising and securing the MQTT broker; may import store (device rows) only."""
