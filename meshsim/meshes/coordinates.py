"""Points on the unit sphere: latitude/longitude in degrees to and from unit vectors."""

from __future__ import annotations

import numpy as np


def latlon_to_xyz(lat_deg, lon_deg) -> np.ndarray:
    """`[..., 3] float64` unit vectors of latitudes and longitudes (degrees, broadcast)."""
    lat, lon = np.radians(np.asarray(lat_deg, np.float64)), np.radians(lon_deg)
    xyz = (np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat))
    return np.stack(np.broadcast_arrays(*xyz), axis=-1)


def xyz_to_latlon(xyz) -> tuple[np.ndarray, np.ndarray]:
    """(latitudes [...] in [-90, 90], longitudes [...] in [0, 360)) float64 degrees of
    non-zero points `xyz [..., 3]`; longitude 0 at the poles."""
    xyz = np.asarray(xyz, np.float64)
    if xyz.shape[-1:] != (3,):
        raise ValueError(f"xyz: expected shape [..., 3], got {xyz.shape}")
    x, y, z = np.moveaxis(xyz, -1, 0)
    lon = np.degrees(np.arctan2(y, x)) % 360.0
    return np.degrees(np.arctan2(z, np.hypot(x, y))), np.where(lon >= 360.0, 0.0, lon)
