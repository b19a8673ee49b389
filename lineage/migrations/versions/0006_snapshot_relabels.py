"""snapshot relabels: rows a snapshot keeps with a corrected label

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 04:00:00

``snapshots.relabels`` lists ``[row_id, old label, new label]`` for every row the
decision policy kept with cleanlab's suggested label instead of removing it
(``screening.on_label_noise: relabel``); null for snapshots published before.
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('relabels', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.drop_column('relabels')
