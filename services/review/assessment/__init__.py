"""Assessment (考核): every unit's score and rank as of a moment, from the campaign's rubric."""
