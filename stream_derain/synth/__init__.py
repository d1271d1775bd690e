"""Rain synthesiser (v2): streak layers over clean images and videos.

- :mod:`.render`: the rain layers and their composition over one image
  (:func:`add_rain`, :class:`RainParams`, :class:`StreakBank`);
- :mod:`.pairs`: training pairs (:func:`rain_pair`, :func:`draw_condition`, :func:`jpeg`);
- :mod:`.video`: rain that falls coherently over a clip (:func:`rain_over_frames`) or
  a camera path over a still (:func:`rainy_video`).

Only numpy and OpenCV are needed: the samples script, the eval video benchmark and
the training data all use this package; its names are re-exported here
(``from stream_derain import synth; synth.add_rain(...)``).
"""

from .pairs import PairRecipe, draw_condition, jpeg, rain_pair
from .render import (
                     MAX_OVERLAP,
                     RainParams,
                     StreakBank,
                     add_rain,
                     coarse_sheet,
                     compose,
                     dense_sheet,
                     drop_field,
                     faint,
                     heavier,
                     render_streaks,
                     sample_params,
                     streak_kernel,
                     streak_map,
                     transmission_map,
)
from .video import CameraPath, camera_crop, rain_over_frames, rainy_video, random_camera

__all__ = [
    "CameraPath",
    "MAX_OVERLAP",
    "PairRecipe",
    "RainParams",
    "StreakBank",
    "add_rain",
    "camera_crop",
    "coarse_sheet",
    "compose",
    "dense_sheet",
    "draw_condition",
    "drop_field",
    "faint",
    "heavier",
    "jpeg",
    "rain_over_frames",
    "rain_pair",
    "rainy_video",
    "random_camera",
    "render_streaks",
    "sample_params",
    "streak_kernel",
    "streak_map",
    "transmission_map",
]
