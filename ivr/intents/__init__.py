"""Understanding: the intent classifier that turns a transcript into a category."""
