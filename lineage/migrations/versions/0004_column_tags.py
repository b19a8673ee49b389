"""column tags (personal-data scan findings per column)

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-23 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'column_tags',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('column_name', sa.String(length=300), nullable=False),
        sa.Column('tag', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('fraction', sa.Float(), nullable=True),
        sa.Column('matches', sa.Integer(), nullable=True),
        sa.Column('sampled', sa.Integer(), nullable=True),
        sa.Column('examples', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['version_id'], ['dataset_versions.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('version_id', 'column_name', 'tag', name='uq_column_tag'),
    )
    with op.batch_alter_table('column_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_column_tags_version_id'), ['version_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('column_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_column_tags_version_id'))
    op.drop_table('column_tags')
