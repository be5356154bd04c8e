"""Linear elasticity on tetrahedra for the deforming-plate solver: assembly (scikit-fem
vector P1/P2 Lagrange elements), clamping, one sparse LU, loads, and von Mises stress.

Units: lengths in m, Young's modulus and stresses in MPa, forces in MN (= MPa·m²),
so stiffness matrices are in MN/m. Small strain, isotropic material. Everything
here runs on the host (numpy, scipy, scikit-fem) and is not jit-safe.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse.linalg

from meshsim.validation import check_number, is_number

# (points hash, cells hash, order) -> (mesh, basis, K_λ, K_μ, strain operator); ≤ 4 meshes.
_PARTS_CACHE: dict[tuple, tuple] = {}


class ElasticSystem(NamedTuple):
    """A clamped linear-elastic body, factorised (build with `build_elastic_system`)."""

    basis: Any  # skfem.Basis, vector P1 or P2 on the tetrahedra
    stiffness: Any  # scipy.sparse [D, D] float64, MN/m; D = number of DOFs
    free: np.ndarray  # [F] int64, DOFs that are not clamped
    free_index: np.ndarray  # [D] int64, each DOF's position in `free`, -1 if clamped
    vertex_dofs: np.ndarray  # [N, 3] int64, DOFs of each vertex's (ux, uy, uz)
    factor: Any  # scipy SuperLU of stiffness[free][:, free]
    lame: tuple[float, float]  # (λ, μ) in MPa
    strain: Any  # _StrainOperator: displacement gradients at quadrature points


def _parts(points: np.ndarray, cells: np.ndarray, element_order: int) -> tuple:
    """The mesh, basis, stiffness matrices for (λ, μ) = (1, 0) and (0, 1) and the
    strain operator, cached per mesh."""
    from skfem import Basis, BilinearForm, ElementTetP1, ElementTetP2, ElementVector, MeshTet, asm
    from skfem.helpers import ddot, div, sym_grad

    key = (
        hashlib.sha1(points.tobytes()).hexdigest(),
        hashlib.sha1(cells.tobytes()).hexdigest(),
        element_order,
    )
    if key not in _PARTS_CACHE:

        @BilinearForm
        def lam_part(u, v, w):
            return div(u) * div(v)

        @BilinearForm
        def mu_part(u, v, w):
            return 2.0 * ddot(sym_grad(u), sym_grad(v))

        mesh = MeshTet(
            np.ascontiguousarray(points.T), np.ascontiguousarray(cells.T, dtype=np.int64)
        )
        element = ElementTetP2() if element_order == 2 else ElementTetP1()
        basis = Basis(mesh, ElementVector(element))
        if len(_PARTS_CACHE) >= 4:
            _PARTS_CACHE.pop(next(iter(_PARTS_CACHE)))
        _PARTS_CACHE[key] = (
            mesh,
            basis,
            asm(lam_part, basis),
            asm(mu_part, basis),
            _strain_operator(Basis(mesh, basis.elem, intorder=2)),
        )
    return _PARTS_CACHE[key]


class _StrainOperator(NamedTuple):
    """What `von_mises` needs to take displacement gradients without scikit-fem's
    per-call work: each local DOF's vector component and scalar gradient."""

    element_dofs: np.ndarray  # [B, C] int64, DOFs of each element's B local functions
    component: np.ndarray  # [B, 3] float64, one-hot: which displacement component
    grad: np.ndarray  # [B, 3, C, Q] float64, ∂φ/∂x_j at Q quadrature points
    dx: np.ndarray  # [C, Q] float64, quadrature weights × Jacobian (m³)


def _strain_operator(basis: Any) -> _StrainOperator:
    grads = np.stack([b[0].grad for b in basis.basis])  # [B, 3 comp, 3 deriv, C, Q]
    component = (np.abs(grads).sum(axis=(2, 3, 4)) > 0).astype(np.float64)  # [B, 3]
    return _StrainOperator(
        np.asarray(basis.element_dofs, dtype=np.int64), component, grads.sum(axis=1), basis.dx
    )


def lame_parameters(youngs_modulus: float, poisson_ratio: float) -> tuple[float, float]:
    """(λ, μ) of an isotropic material, in the units of `youngs_modulus`."""
    e, nu = youngs_modulus, poisson_ratio
    return e * nu / ((1 + nu) * (1 - 2 * nu)), e / (2 * (1 + nu))


def build_elastic_system(
    points: np.ndarray,
    cells: np.ndarray,
    *,
    clamped: np.ndarray,
    youngs_modulus: float,
    poisson_ratio: float,
    element_order: int = 2,
) -> ElasticSystem:
    """Assembles and factorises a linear-elastic body clamped at some vertices.

    Args:
      points: `[N, 3] float` rest positions (m).
      cells: `[C, 4] int` tetrahedra.
      clamped: `[N] bool`, vertices with zero displacement; with P2, the midside
        DOFs of boundary facets whose vertices are all clamped are clamped too.
      youngs_modulus: MPa, > 0.
      poisson_ratio: in [0, 0.5).
      element_order: 1 (P1) or 2 (P2, default; P1 locks in bending).

    Returns:
      The factorised `ElasticSystem`. Cost: the assembly (~1.5 s per stiffness part
      for 825 vertices and P2 on a 2-core CPU) is cached per mesh; the sparse LU
      (~0.5 s there) is not.

    Raises:
      ValueError: on bad shapes, materials, or no clamped vertex (a floating body).
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    cells = np.ascontiguousarray(cells, dtype=np.int32)
    clamped = np.asarray(clamped, dtype=bool)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points: expected shape [N, 3], got {points.shape}")
    if cells.ndim != 2 or cells.shape[1] != 4 or cells.min() < 0 or cells.max() >= len(points):
        raise ValueError(f"cells: expected [C, 4] indices into {len(points)} points")
    if clamped.shape != (len(points),) or not clamped.any():
        raise ValueError(
            f"clamped: expected [{len(points)}] bool with at least one True, got shape "
            f"{clamped.shape} with {int(clamped.sum())} True"
        )
    youngs_modulus = check_number("youngs_modulus", youngs_modulus, greater_than=0)
    if not is_number(poisson_ratio, minimum=0) or poisson_ratio >= 0.5:
        raise ValueError(f"poisson_ratio: expected a number in [0, 0.5), got {poisson_ratio!r}")
    if element_order not in (1, 2):
        raise ValueError(f"element_order: expected 1 or 2, got {element_order!r}")

    mesh, basis, k_lam, k_mu, strain = _parts(points, cells, element_order)
    lam, mu = lame_parameters(youngs_modulus, poisson_ratio)
    stiffness = (lam * k_lam + mu * k_mu).tocsr()
    vertex_dofs = np.asarray(basis.nodal_dofs.T, dtype=np.int64)  # [N, 3]
    facets = mesh.boundary_facets()
    facets = facets[clamped[mesh.facets[:, facets]].all(axis=0)]
    fixed = np.union1d(basis.get_dofs(facets=facets).all(), vertex_dofs[clamped].ravel())
    free = np.setdiff1d(np.arange(stiffness.shape[0]), fixed)
    free_index = np.full(stiffness.shape[0], -1, dtype=np.int64)
    free_index[free] = np.arange(len(free))
    factor = scipy.sparse.linalg.splu(stiffness[free][:, free].tocsc())
    return ElasticSystem(basis, stiffness, free, free_index, vertex_dofs, factor, (lam, mu), strain)


def load_vector(
    system: ElasticSystem,
    *,
    body_force: tuple[float, float, float] = (0.0, 0.0, 0.0),
    traction: tuple[float, float, float] = (0.0, 0.0, 0.0),
    traction_vertices: np.ndarray | None = None,
) -> np.ndarray:
    """Consistent nodal loads `[D] float64` (MN) of a uniform body force (MN/m³) and a
    uniform traction (MPa) on the boundary facets whose vertices are all in
    `traction_vertices [N] bool`."""
    from skfem import FacetBasis, LinearForm, asm

    body = np.asarray(body_force, dtype=np.float64)
    trac = np.asarray(traction, dtype=np.float64)

    def uniform(vector: np.ndarray) -> Any:
        return LinearForm(lambda v, w: sum(vector[i] * v[i] for i in range(3)))

    basis = system.basis
    load = asm(uniform(body), basis)
    if traction_vertices is not None and np.any(trac):
        mesh = basis.mesh
        facets = mesh.boundary_facets()
        facets = facets[np.asarray(traction_vertices, bool)[mesh.facets[:, facets]].all(axis=0)]
        if len(facets) == 0:
            raise ValueError("traction_vertices: no boundary facet has all its vertices selected")
        load = load + asm(uniform(trac), FacetBasis(mesh, basis.elem, facets=facets))
    return load


def static_displacement(system: ElasticSystem, load: np.ndarray) -> np.ndarray:
    """Displacement DOFs `[D] float64` (m) under nodal loads `load [D]` (clamped DOFs 0)."""
    u = np.zeros(system.stiffness.shape[0])
    u[system.free] = system.factor.solve(np.asarray(load, dtype=np.float64)[system.free])
    return u


def vertex_displacement(system: ElasticSystem, u: np.ndarray) -> np.ndarray:
    """Displacements `[N, 3] float64` of the vertices from DOFs `u [D]`."""
    return u[system.vertex_dofs]


def von_mises(system: ElasticSystem, u: np.ndarray) -> np.ndarray:
    """Von Mises stress at the vertices, `[N] float64` in MPa, from DOFs `u [D]`.

    Each element's value is its volume average over 4 quadrature points; a
    vertex gets the volume-weighted mean of the elements around it. Cost: ~10 ms
    for 2,880 P2 elements.
    """
    op = system.strain
    weighted = op.component[:, :, None] * u[op.element_dofs][:, None, :]  # [B, 3, C]
    grad = np.einsum("bac,bjcq->ajcq", weighted, op.grad, optimize=True)  # [3, 3, C, Q]
    strain = 0.5 * (grad + grad.transpose(1, 0, 2, 3))
    lam, mu = system.lame
    trace = strain[0, 0] + strain[1, 1] + strain[2, 2]
    dev = 2 * mu * (strain - (trace / 3) * np.eye(3)[:, :, None, None])
    vm = np.sqrt(1.5 * np.einsum("ijcq,ijcq->cq", dev, dev))  # [C, Q]
    volume = op.dx.sum(axis=1)  # [C]
    cell_vm = (vm * op.dx).sum(axis=1) / volume
    cells = system.basis.mesh.t  # [4, C]
    n = system.basis.mesh.p.shape[1]
    weight = np.bincount(cells.ravel(), np.tile(volume, 4), minlength=n)
    return np.bincount(cells.ravel(), np.tile(cell_vm * volume, 4), minlength=n) / weight
