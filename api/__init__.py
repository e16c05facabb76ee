"""The HTTP API: a stateless FastAPI app in front of Temporal workflows and PostgreSQL read models."""
