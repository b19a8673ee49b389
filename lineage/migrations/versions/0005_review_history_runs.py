"""superseded stage results and decisions; pipeline run liveness and trigger

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 22:30:00

``superseded_results`` keeps every stage result and decision a rerun replaced, verbatim,
so history is never overwritten. ``pipeline_runs`` learns who triggered a run and where and
when its process was last seen (an ``abandoned`` run names both).
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'superseded_results',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('stage', sa.String(length=32), nullable=False),
        sa.Column('original_id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.String(length=36), nullable=True),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('decided_by', sa.String(length=200), nullable=True),
        sa.Column('output', sa.JSON(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('superseded_by_run', sa.String(length=36), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['version_id'], ['dataset_versions.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('superseded_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_superseded_results_version_id'), ['version_id'], unique=False)
    with op.batch_alter_table('pipeline_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('triggered_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('host', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('pid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pipeline_runs', schema=None) as batch_op:
        batch_op.drop_column('note')
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('pid')
        batch_op.drop_column('host')
        batch_op.drop_column('triggered_by')
    with op.batch_alter_table('superseded_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_superseded_results_version_id'))
    op.drop_table('superseded_results')
