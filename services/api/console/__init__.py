"""The operators' console (`/console`, SPEC §3.6): server-rendered pages over the admin views."""
