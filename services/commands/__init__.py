"""Subcommands that belong to no single service (migrations, tokens, replay)."""
