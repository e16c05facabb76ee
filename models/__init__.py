"""DTOs shared by workflows, activities and the API (pydantic), and SQLModel tables under `models.tables`.

Workflows import only the DTO modules, never `models.tables`.
"""
