"""The review queue: listing and flags, claims and assignment, decisions (one or in bulk) and comment threads."""
