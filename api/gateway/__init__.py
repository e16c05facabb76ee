"""The integration gateway (8.5.8): signed, replay-protected, rate-limited and optionally encrypted calls from
integrated systems to everything under /api/v1/integration/. `protocol` is what a partner implements."""
