"""The change feed: numbered changes, live wake-ups, and signed pushes to the app's backend."""
