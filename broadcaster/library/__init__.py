"""The media library and its routes; may import store and web only."""
