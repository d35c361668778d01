"""Procrastinate jobs: provider syncs and maintenance. Imports `arti`, never `handlers`."""
