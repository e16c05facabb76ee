"""the drug catalogue's dictionary data and its reviewed changes (药品目录管理, 8.6.2)

Revision ID: f1c6a9e3b5d7
Revises: e8b3d1a7c4f9
Create Date: 2026-11-26 08:10:00.000000

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "f1c6a9e3b5d7"
down_revision: Union[str, Sequence[str], None] = "e8b3d1a7c4f9"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_PERMISSIONS = (("catalog.maintain", "维护药品目录（提交变更）"), ("catalog.approve", "审核发布药品目录变更"))


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("herbs", sa.Column("code", sa.String(length=32), nullable=True))
    op.create_unique_constraint("herbs_code_key", "herbs", ["code"])
    op.add_column("herbs", sa.Column("spec", sa.String(length=32), server_default="饮片", nullable=False))
    op.add_column("herbs", sa.Column("unit", sa.String(length=8), server_default="g", nullable=False))
    op.add_column("herbs", sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False))
    op.add_column("herbs", sa.Column("control_class", sa.String(length=16), nullable=True))
    op.add_column("herbs", sa.Column("transport_note", sa.String(length=100), nullable=True))
    op.create_table(
        "catalog_changes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("herb_name", sa.String(length=40), nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("proposed_by", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=40), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('add', 'update', 'disable', 'enable')", name="catalog_change_kind"),
        sa.CheckConstraint("status IN ('pending', 'published', 'rejected')", name="catalog_change_status"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_catalog_changes_herb_name", "catalog_changes", ["herb_name"])
    op.create_index("ix_catalog_changes_status", "catalog_changes", ["status"])
    op.create_index(
        "catalog_change_pending",
        "catalog_changes",
        ["herb_name"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )
    permissions = sa.table("permissions", sa.column("code", sa.String), sa.column("name", sa.String))
    role_permissions = sa.table("role_permissions", sa.column("role", sa.String), sa.column("permission", sa.String))
    op.bulk_insert(permissions, [{"code": code, "name": name} for code, name in _PERMISSIONS])
    op.bulk_insert(role_permissions, [{"role": "pharmacist", "permission": "catalog.maintain"}])


def downgrade() -> None:
    """Downgrade schema."""
    codes = ", ".join(f"'{code}'" for code, _ in _PERMISSIONS)
    op.execute(f"DELETE FROM user_permissions WHERE permission IN ({codes})")
    op.execute(f"DELETE FROM role_permissions WHERE permission IN ({codes})")
    op.execute(f"DELETE FROM permissions WHERE code IN ({codes})")
    op.drop_table("catalog_changes")
    for column in ("transport_note", "control_class", "active", "unit", "spec"):
        op.drop_column("herbs", column)
    op.drop_constraint("herbs_code_key", "herbs", type_="unique")
    op.drop_column("herbs", "code")
