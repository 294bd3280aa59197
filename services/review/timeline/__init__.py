"""The activity timeline: the hash-chained record of everything that happened, its routes and verification."""
