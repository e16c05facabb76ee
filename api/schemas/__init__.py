"""Response and request bodies that exist only at the HTTP boundary (shared DTOs live in `models/`)."""
