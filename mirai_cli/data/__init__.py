"""Image sources, crops and the token store."""

from mirai_cli.data.crops import CROP_MODES, CROP_NAMES, center_crop_arr, make_crops, num_crops
from mirai_cli.data.images import UnreadableImage
from mirai_cli.data.sources import ImageSource, open_source
from mirai_cli.data.store import ShardedCodes, TokenStore, store_info

__all__ = ["CROP_MODES", "CROP_NAMES", "ImageSource", "ShardedCodes", "TokenStore", "UnreadableImage",
           "center_crop_arr", "make_crops", "num_crops", "open_source", "store_info"]
