"""smartpractice: self-hosted video consultations for medical practices."""
