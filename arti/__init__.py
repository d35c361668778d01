"""ARTi platform core: settings, database access, local Postgres, migrations and the CLI."""

__all__ = ["__version__"]
__version__ = "0.1.0"
