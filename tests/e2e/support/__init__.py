"""Helpers for the end-to-end suite: moto, the relay process, segments and X-Ray queries."""
