"""Routing: rules, roster and the Redis-backed router that reserves agents."""
