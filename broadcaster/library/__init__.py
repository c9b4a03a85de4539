"""The media library (uploads, spoken text, bulletins, signals) and its routes; may import
store/, web/, auth/, settings, audio/, devices/, loa."""
