"""The vision team's training code (a fixture: never run)."""
