"""Broadcasts on the air (dispatcher, legs, live and relay, prefetch, ledger, routes); may
import store/, places/, web/, auth/, settings, devices/, audio/, loa."""
