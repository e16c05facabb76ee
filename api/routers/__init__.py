"""One router per resource; `api.main` mounts each under /api/v1."""
