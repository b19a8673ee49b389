"""Feature encoding: every usable column of a table becomes probe features.

``plan.py`` decides, per column, how it is read (and records why); ``encode.py`` applies
those plans to data and reference rows alike; ``images.py`` decodes image bytes with
Pillow; ``arrow_types.py`` holds the Arrow type predicates.
"""

from .arrow_types import (
           is_binary,
           is_image_struct,
           is_list,
           is_numeric,
           is_string,
           is_temporal,
           jsonable,
)
from .encode import encode_columns
from .images import decode_images, image_pixels
from .plan import ColumnEncoding, plan_columns

__all__ = ["ColumnEncoding", "decode_images", "encode_columns", "image_pixels", "is_binary", "is_image_struct",
           "is_list", "is_numeric", "is_string", "is_temporal", "jsonable", "plan_columns"]
