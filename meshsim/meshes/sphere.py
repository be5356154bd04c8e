"""Weather on the sphere: lat-lon grids, grid↔mesh edges and GraphCast's `WeatherMesh`.

Points live on the unit sphere as `(x, y, z) = (cos lat cos lon, cos lat sin lon,
sin lat)`: z through the north pole, x through (0°N, 0°E). Distances are chord
lengths in R³, as in GraphCast (Lam et al., Science 2023). numpy/scipy only:
`WeatherMesh.graph` imports `meshsim.graph` (and so jax) only when called.
The icosahedral multimesh lives in `meshsim.meshes.icosahedral_mesh` (its names are
re-exported here), regional refinement (a stretched mesh) in `meshsim.meshes.regional`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree

from meshsim.meshes.coordinates import latlon_to_xyz, xyz_to_latlon
from meshsim.meshes.icosahedral_mesh import (  # noqa: F401 (re-exported)
    MAX_SPLITS,
    IcosahedralMesh,
    icosahedral_hierarchy,
    icosahedron,
    max_edge_length,
    multimesh_edges,
    split_faces,
)
from meshsim.meshes.regional import Refinement, refine, vertex_radii
from meshsim.validation import check_int, check_number

if TYPE_CHECKING:
    from meshsim.graph import MultiGraph

logger = logging.getLogger(__name__)

_CHUNK = 1 << 17  # points per block in containing_faces: bounds its temporaries (~20 MB)
_TOLERANCE = 1e-12  # slack of the in-face test, so points on shared edges/vertices pass


# ----------------------------------------------------------------------------- grids


def latlon_grid(resolution_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """The equiangular grid with pole rows (WeatherBench2's `equiangular_with_poles`).

    1.5° gives 121 × 240 points, 1° 181 × 360, 0.25° 721 × 1440 (ERA5's grid).

    Args:
      resolution_deg: spacing in degrees; must divide 180 exactly.

    Returns:
      (latitudes [H] float64 degrees from -90 to 90 inclusive, ascending;
      longitudes [W = 2(H - 1)] float64 degrees from 0 inclusive to 360 exclusive).
    """
    rows = 180.0 / check_number("resolution_deg", resolution_deg, greater_than=0)
    if abs(rows - round(rows)) > 1e-9 * rows:
        raise ValueError(f"resolution_deg: expected a divisor of 180, got {resolution_deg!r}")
    rows = round(rows)
    return np.linspace(-90.0, 90.0, rows + 1), np.arange(2 * rows) * (180.0 / rows)


def gaussian_grid(
    num_latitudes: int, num_longitudes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian grid: Gauss–Legendre latitudes (no pole rows), regular longitudes.

    Args:
      num_latitudes: rows, >= 2.
      num_longitudes: points per row, >= 1 (default 2 × num_latitudes).

    Returns:
      (latitudes [H] float64 degrees ascending: arcsin of the Gauss–Legendre nodes;
      longitudes [W] float64 degrees j·360/W).
    """
    rows = check_int("num_latitudes", num_latitudes, minimum=2, expected="an int >= 2")
    cols = 2 * rows if num_longitudes is None else num_longitudes
    cols = check_int("num_longitudes", cols, minimum=1, expected="an int >= 1")
    nodes, _ = np.polynomial.legendre.leggauss(rows)  # ascending sin(latitude)
    return np.degrees(np.arcsin(nodes)), np.arange(cols) * (360.0 / cols)


def _floats(name: str, value) -> np.ndarray:
    try:
        return np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected numbers, got {type(value).__name__}") from None


def check_grid(latitudes, longitudes) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 (latitudes [H], longitudes [W]); raises ValueError.

    Each must be 1-D, finite and strictly increasing; latitudes within [-90, 90],
    longitudes within [0, 360).
    """
    lat, lon = _floats("latitudes", latitudes), _floats("longitudes", longitudes)
    for name, a, outside, interval in (
        ("latitudes", lat, lambda a: (a < -90) | (a > 90), "[-90, 90]"),
        ("longitudes", lon, lambda a: (a < 0) | (a >= 360), "[0, 360)"),
    ):
        if a.ndim != 1 or a.size == 0 or not np.isfinite(a).all() or outside(a).any():
            got = f"range [{a.min()}, {a.max()}]" if a.size else "no values"
            raise ValueError(
                f"{name}: expected a 1-D array of finite values in {interval}, "
                f"got shape {a.shape}, {got}"
            )
        if (np.diff(a) <= 0).any():
            i = int(np.argmax(np.diff(a) <= 0))
            raise ValueError(f"{name}: expected strictly increasing, got {a[i]} then {a[i + 1]}")
    return lat, lon


def grid_points(latitudes, longitudes) -> np.ndarray:
    """`[H·W, 3] float64` unit vectors, latitude-major: row i·W + j = (lat i, lon j)."""
    lat, lon = check_grid(latitudes, longitudes)
    return latlon_to_xyz(lat[:, None], lon[None, :]).reshape(-1, 3)


def cell_area_weights(latitudes) -> np.ndarray:
    """`[H] float64` area weight of each latitude row, mean 1 (WeatherBench2's rule).

    Row i spans from the midpoint to the row below to the midpoint to the row above,
    the first and last rows reaching -90° and 90°; its weight is that band's area
    sin(upper) - sin(lower), normalised to mean 1 (`weatherbench2.metrics.
    get_lat_weights`). Inside it is ≈ cos(lat) × spacing; a pole row of an
    equiangular grid with poles gets the cap of half a spacing, 1 - cos(Δ/2) ≈ Δ²/8,
    not the zero that cos(±90°) would give.
    """
    lat = np.radians(check_grid(latitudes, [0.0])[0])
    bounds = np.concatenate([[-np.pi / 2], (lat[:-1] + lat[1:]) / 2, [np.pi / 2]])
    area = np.sin(bounds[1:]) - np.sin(bounds[:-1])
    return area / area.mean()


# ----------------------------------------------------------------------------- grid ↔ mesh


def _points(name: str, value) -> np.ndarray:
    a = _floats(name, value)
    if a.ndim != 2 or a.shape[1] != 3 or not np.isfinite(a).all():
        raise ValueError(f"{name}: expected a finite [N, 3] array, got shape {a.shape}")
    return a


def grid2mesh_edges(grid_xyz, mesh_vertices, radius) -> tuple[np.ndarray, np.ndarray]:
    """Edges from each grid point to every mesh vertex within chord distance `radius`.

    Args:
      grid_xyz: [G, 3] float grid points on the unit sphere.
      mesh_vertices: [V, 3] float mesh vertices on the unit sphere.
      radius: chord radius: a float, or [V] float per mesh vertex (a grid point g
        joins vertex v iff |g - v| <= radius[v]).

    Returns:
      (senders [E] int32 grid indices, receivers [E] int32 mesh indices), sorted by
      grid index, then mesh index. ~1 s for 0.25° and 6 splits.
    """
    grid, mesh = _points("grid_xyz", grid_xyz), _points("mesh_vertices", mesh_vertices)
    radius = np.asarray(radius, np.float64)
    if radius.shape not in ((), (len(mesh),)) or not (np.isfinite(radius) & (radius > 0)).all():
        raise ValueError(
            f"radius: expected finite values > 0, shape () or ({len(mesh)},), got {radius!r:.80}"
        )
    radius = np.broadcast_to(radius, (len(mesh),))
    # One dual-tree pass finds every pair within the largest radius; each pair then
    # meets its own vertex's radius.
    reach = float(radius.max()) * (1 + 1e-9)
    pairs = cKDTree(grid).sparse_distance_matrix(cKDTree(mesh), reach, output_type="ndarray")
    pairs = pairs[pairs["v"] <= radius[pairs["j"]]]
    keys = np.sort(pairs["i"] * len(mesh) + pairs["j"])
    return (keys // len(mesh)).astype(np.int32), (keys % len(mesh)).astype(np.int32)


def containing_faces(points, mesh: IcosahedralMesh) -> np.ndarray:
    """`[G] int32`: for each of `points [G, 3]`, the face of `mesh` that holds it.

    A point p lies in face (a, b, c) iff the ray from the origin through p crosses
    the triangle: p·(a×b), p·(b×c), p·(c×a) >= -1e-12 and p·(a+b+c) > 0. Candidates
    are the faces with the nearest centroids (a KD-tree), widened until one passes;
    a point on a shared side or vertex goes to the nearest-centroid passing face.
    Works for any tiling of the sphere, refined ones with hanging vertices too.
    ~1.5 s for 0.25° on 6 splits.

    Raises:
      ValueError: if a point lies in no face (the faces do not tile the sphere).
    """
    points = _points("points", points)
    if not isinstance(mesh, IcosahedralMesh):
        raise TypeError(f"mesh: expected an IcosahedralMesh, got {type(mesh).__name__}")
    corners = mesh.vertices[mesh.faces]  # [F, 3, 3]
    planes = np.cross(corners, np.roll(corners, -1, axis=1))  # [F, 3, 3]: a×b, b×c, c×a
    centroids = corners.sum(axis=1)
    tree = cKDTree(centroids / np.linalg.norm(centroids, axis=1, keepdims=True))
    result = np.zeros(len(points), np.int32)
    for start in range(0, len(points), _CHUNK):
        pending, k = np.arange(start, min(start + _CHUNK, len(points))), min(2, mesh.num_faces)
        while pending.size:
            p = points[pending]
            cand = tree.query(p, k=k)[1].reshape(len(p), k)
            inside = np.einsum("pkcx,px->pkc", planes[cand], p).min(axis=2) >= -_TOLERANCE
            inside &= np.einsum("pkx,px->pk", centroids[cand], p) > 0
            hit = inside.any(axis=1)
            result[pending[hit]] = cand[hit, np.argmax(inside[hit], axis=1)]
            pending = pending[~hit]
            if pending.size and k == mesh.num_faces:
                raise ValueError(
                    f"mesh: point {int(pending[0])} at {points[pending[0]].tolist()} lies in no "
                    "face; expected faces that tile the sphere"
                )
            k = min(4 * k, mesh.num_faces)
    return result


def mesh2grid_edges(grid_xyz, mesh: IcosahedralMesh) -> tuple[np.ndarray, np.ndarray]:
    """Edges from the 3 corners of the face holding each grid point to that point.

    Args:
      grid_xyz: [G, 3] float grid points on the unit sphere.
      mesh: faces that tile the sphere (the finest level).

    Returns:
      (senders [3G] int32 mesh indices, receivers [3G] int32 grid indices); rows
      3g..3g+2 are grid point g's (`containing_faces`).
    """
    faces = containing_faces(grid_xyz, mesh)
    senders = mesh.faces[faces].reshape(-1).astype(np.int32)
    return senders, np.repeat(np.arange(len(faces), dtype=np.int32), 3)


# ----------------------------------------------------------------------------- features


def node_features(lat_deg, lon_deg) -> np.ndarray:
    """`[N, 3] float64` GraphCast's structural node features, from [N] degrees each.

    (cos(90° - lat), cos(lon), sin(lon)). The paper says "cosine of the latitude";
    its code (`model_utils.get_graph_spatial_features`) uses the cosine of the
    polar angle, i.e. sin(lat), which also tells the hemispheres apart. We follow
    the code.
    """
    lat, lon = np.radians(np.asarray(lat_deg, np.float64)), np.radians(lon_deg)
    return np.stack([np.sin(lat), np.cos(lon), np.sin(lon)], axis=-1)


def edge_features(sender_latlon, receiver_latlon, senders, receivers) -> np.ndarray:
    """`[E, 4] float64` GraphCast's structural edge features, scaled by the longest edge.

    The displacement sender − receiver is rotated into the receiver's local frame,
    `R_y(lat) R_z(-lon)` (about z by -lon, then about y by lat), which takes the
    receiver to (1, 0, 0) = (0°N, 0°E): local x points up, y east, z north (the
    frame of GraphCast's `relative_{latitude,longitude}_local_coordinates`).
    Features are (dx, dy, dz, |d|) divided by the longest |d| of the edge set, so
    lengths lie in [0, 1]; turning the sphere about its axis changes nothing.

    Args:
      sender_latlon: (latitudes [Ns], longitudes [Ns]) degrees of the sender set.
      receiver_latlon: (latitudes [Nr], longitudes [Nr]) degrees of the receiver set
        (grid pole points keep their own longitude, hence their own frame).
      senders: [E] int indices into the sender set.
      receivers: [E] int indices into the receiver set.
    """
    lat, lon = (np.radians(np.asarray(x, np.float64))[receivers] for x in receiver_latlon)
    d = latlon_to_xyz(*sender_latlon)[senders] - latlon_to_xyz(*receiver_latlon)[receivers]
    x1 = np.cos(lon) * d[:, 0] + np.sin(lon) * d[:, 1]  # R_z(-lon)
    y1 = np.cos(lon) * d[:, 1] - np.sin(lon) * d[:, 0]
    local = np.stack(
        [np.cos(lat) * x1 + np.sin(lat) * d[:, 2], y1, np.cos(lat) * d[:, 2] - np.sin(lat) * x1], 1
    )
    length = np.linalg.norm(local, axis=1, keepdims=True)
    return np.concatenate([local, length], axis=1) / (float(length.max(initial=0.0)) or 1.0)


# ----------------------------------------------------------------------------- the weather mesh


@dataclasses.dataclass(frozen=True, eq=False)
class WeatherMesh:
    """GraphCast's grid, multimesh and grid↔mesh edges, kept for plots and tasks.

    Attributes:
      latitudes: [H] float64 grid latitudes, degrees ascending; for scattered data
        points (`scattered`), [N] the latitude of each point.
      longitudes: [W] float64 grid longitudes, degrees in [0, 360); scattered: [N].
      grid_xyz: [H·W, 3] (or [N, 3]) float64 data points, latitude-major for a grid.
      levels: mesh levels coarse to fine, vertices nested: global levels
        0..splits, then any refined ones; `levels[-1]` tiles the sphere.
      mesh_edges: (senders [Em] int32, receivers [Em] int32), the multimesh.
      grid2mesh: (senders [Eg] int32 grid indices, receivers [Eg] int32 mesh indices).
      mesh2grid: (senders [3·H·W] int32 mesh indices, receivers [3·H·W] int32 grid indices).
      radius: [V] float64 grid2mesh chord radius of each mesh vertex.
      refinement: the `Refinement` applied, or None.
      scattered: the data nodes are a point set (`build_points_mesh`), not a grid.
    """

    latitudes: np.ndarray
    longitudes: np.ndarray
    grid_xyz: np.ndarray
    levels: tuple[IcosahedralMesh, ...]
    mesh_edges: tuple[np.ndarray, np.ndarray]
    grid2mesh: tuple[np.ndarray, np.ndarray]
    mesh2grid: tuple[np.ndarray, np.ndarray]
    radius: np.ndarray
    refinement: Refinement | None = None
    scattered: bool = False

    @property
    def mesh(self) -> IcosahedralMesh:
        """The finest faces (a tiling of the sphere) on all mesh vertices."""
        return self.levels[-1]

    def graph(self) -> MultiGraph:
        """The typed graph with GraphCast's structural features (float32), validated.

        Node sets `grid` [H·W, 3] (latitude-major) and `mesh` [V, 3] (`node_features`);
        edge sets `grid2mesh` (grid → mesh), `mesh` (mesh → mesh) and `mesh2grid`
        (mesh → grid), [E, 4] each (`edge_features`). Host side; ~5 s for 0.25°.
        """
        from meshsim.graph import make_graph  # imports jax, which meshes otherwise avoid

        if self.scattered:
            grid = self.latitudes, self.longitudes  # [N] each
        else:
            h, w = len(self.latitudes), len(self.longitudes)
            grid = np.repeat(self.latitudes, w), np.tile(self.longitudes, h)  # [H·W] each
        where = {"grid": grid, "mesh": xyz_to_latlon(self.mesh.vertices)}
        sets = {}
        for name, (s, r), ends in (
            ("grid2mesh", self.grid2mesh, ("grid", "mesh")),
            ("mesh", self.mesh_edges, ("mesh", "mesh")),
            ("mesh2grid", self.mesh2grid, ("mesh", "grid")),
        ):
            features = edge_features(where[ends[0]], where[ends[1]], s, r).astype(np.float32)
            sets[name] = (features, s, r, *ends)
        nodes = {k: node_features(*v).astype(np.float32) for k, v in where.items()}
        return make_graph(nodes, sets)


def build_weather_mesh(
    latitudes,
    longitudes,
    *,
    splits: int = 6,
    radius_fraction: float = 0.6,
    refinement: Refinement | None = None,
) -> WeatherMesh:
    """Builds GraphCast's multimesh and grid↔mesh edges for a lat-lon grid. Host side.

    grid2mesh joins each grid point to the mesh vertices within chord distance
    `radius_fraction` × the longest finest-level side (GraphCast's rule). With a
    `refinement` each vertex gets its own radius, `radius_fraction` × the longest
    side of the finest faces around it (`regional.vertex_radii`), so fine vertices
    gather from a proportionally small neighbourhood. mesh2grid joins each grid
    point to the 3 corners of its finest face.

    Args:
      latitudes: [H] float degrees, strictly increasing in [-90, 90].
      longitudes: [W] float degrees, strictly increasing in [0, 360).
      splits: global icosahedral splits, 0..MAX_SPLITS (GraphCast: 6).
      radius_fraction: > 0 (GraphCast: 0.6; below ~0.6 grid points go unlinked).
      refinement: optional `meshsim.meshes.regional.Refinement`.

    Returns:
      A `WeatherMesh`. 0.25° with 6 splits: 1,618,824 grid2mesh edges (DeepMind's
      code, in float32: 1,618,818; the paper prints 1,618,746), 327,660 mesh edges,
      3,114,720 mesh2grid edges; ~5 s of CPU.
    """
    lat, lon = check_grid(latitudes, longitudes)
    return _build(lat, lon, grid_points(lat, lon), splits, radius_fraction, refinement, False)


def build_points_mesh(
    latitudes,
    longitudes,
    *,
    splits: int = 6,
    radius_fraction: float = 0.6,
    refinement: Refinement | None = None,
) -> WeatherMesh:
    """`build_weather_mesh` for data nodes at any points: a coarse global grid plus a
    fine regional one (a stretched grid), or an unstructured set. Host side.

    Args:
      latitudes, longitudes: [N] float degrees of each point (latitude in [-90, 90],
        longitude in [0, 360)); a point may repeat (the pole row of a grid).
      splits, radius_fraction, refinement: as `build_weather_mesh`; with a refinement
        each mesh vertex gathers within its own radius, so fine regional points
        reach the refined vertices and coarse points the coarse ones.

    Returns:
      A `WeatherMesh` with `scattered=True` (`latitudes`/`longitudes` per point).

    Raises:
      ValueError: shapes differ or values are out of range.
    """
    lat, lon = _floats("latitudes", latitudes), _floats("longitudes", longitudes)
    if lat.ndim != 1 or lat.shape != lon.shape or lat.size == 0:
        raise ValueError(
            f"latitudes, longitudes: expected two [N] arrays, got {lat.shape} and {lon.shape}"
        )
    bad = ~np.isfinite(lat) | ~np.isfinite(lon) | (np.abs(lat) > 90) | (lon < 0) | (lon >= 360)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"points: expected latitudes in [-90, 90] and longitudes in [0, 360), got point "
            f"{i} at ({lat[i]}, {lon[i]})"
        )
    xyz = latlon_to_xyz(lat, lon).reshape(-1, 3)
    return _build(lat, lon, xyz, splits, radius_fraction, refinement, True)


def _build(lat, lon, grid, splits, radius_fraction, refinement, scattered) -> WeatherMesh:
    """The multimesh and grid↔mesh edges for data points `grid` [N, 3]."""
    splits = check_int("splits", splits, minimum=0, maximum=MAX_SPLITS)
    radius_fraction = check_number("radius_fraction", radius_fraction, greater_than=0)
    levels = icosahedral_hierarchy(splits)
    if refinement is None:
        radius = np.full(levels[-1].num_vertices, radius_fraction * max_edge_length(levels[-1]))
    else:
        levels += refine(levels[-1], refinement)
        radius = vertex_radii(levels[-1], radius_fraction)
    g2m = grid2mesh_edges(grid, levels[-1].vertices, radius)
    if unlinked := len(grid) - len(np.unique(g2m[0])):
        logger.warning(
            "%d of %d grid points have no grid2mesh edge (splits=%d, radius_fraction=%g)",
            *(unlinked, len(grid), splits, radius_fraction),
        )
    return WeatherMesh(
        latitudes=lat,
        longitudes=lon,
        grid_xyz=grid,
        levels=tuple(levels),
        mesh_edges=multimesh_edges(levels),
        grid2mesh=g2m,
        mesh2grid=mesh2grid_edges(grid, levels[-1]),
        radius=radius,
        refinement=refinement,
        scattered=scattered,
    )


def weather_graph(
    latitudes,
    longitudes,
    *,
    splits: int = 6,
    radius_fraction: float = 0.6,
    refinement: Refinement | None = None,
) -> MultiGraph:
    """GraphCast's typed graph for a lat-lon grid: `build_weather_mesh(...).graph()`."""
    weather_mesh = build_weather_mesh(
        latitudes, longitudes, splits=splits, radius_fraction=radius_fraction, refinement=refinement
    )
    return weather_mesh.graph()
