"""Mesh simulation datasets: MeshGraphNets TFRecord and native HDF5, one trajectory API.

A trajectory is a `dict[str, np.ndarray]` laid out as in the MeshGraphNets datasets (see
`docs/CONVENTIONS.md`); `meta.json` describes its fields. Typical use::

    from meshsim import data
    for trajectory in data.iter_trajectories("datasets/cylinder_flow", "train"):
        ...
    data.convert_dataset("datasets/cylinder_flow", "datasets/cylinder_flow_h5")
    print(data.format_inspection(data.inspect_dataset("datasets/cylinder_flow_h5")))
"""

from meshsim.data.datasets import (
    Dataset,
    convert_dataset,
    iter_trajectories,
    list_splits,
    open_dataset,
    varlen_frames,
)
from meshsim.data.frame_cache import FrameCache
from meshsim.data.hdf5 import (
    HDF5Writer,
    iter_hdf5_trajectories,
    num_trajectories,
    read_hdf5_trajectory,
    write_hdf5_split,
)
from meshsim.data.mesh_inspect import count_mesh_edges, format_inspection, inspect_dataset
from meshsim.data.meta import (
    DatasetFormatError,
    infer_meta,
    load_meta,
    save_meta,
    validate_meta,
    validate_trajectory,
)
from meshsim.data.particle_convert import convert_particle_dataset
from meshsim.data.particle_inspect import inspect_particle_dataset, radius_neighbours
from meshsim.data.particles import (
    iter_particle_trajectories,
    load_particle_metadata,
    particle_format,
)
from meshsim.data.tfrecord import (
    TFRecordWriter,
    crc32c,
    decode_trajectory,
    encode_trajectory,
    index_tfrecord,
    iter_tfrecord_records,
    iter_tfrecord_trajectories,
    masked_crc32c,
    write_tfrecord_split,
)

__all__ = [
    "Dataset",
    "DatasetFormatError",
    "FrameCache",
    "HDF5Writer",
    "TFRecordWriter",
    "convert_dataset",
    "convert_particle_dataset",
    "count_mesh_edges",
    "crc32c",
    "decode_trajectory",
    "encode_trajectory",
    "format_inspection",
    "index_tfrecord",
    "infer_meta",
    "inspect_dataset",
    "inspect_particle_dataset",
    "iter_hdf5_trajectories",
    "iter_particle_trajectories",
    "iter_tfrecord_records",
    "iter_tfrecord_trajectories",
    "iter_trajectories",
    "list_splits",
    "load_meta",
    "load_particle_metadata",
    "masked_crc32c",
    "num_trajectories",
    "open_dataset",
    "particle_format",
    "radius_neighbours",
    "read_hdf5_trajectory",
    "save_meta",
    "validate_meta",
    "validate_trajectory",
    "varlen_frames",
    "write_hdf5_split",
    "write_tfrecord_split",
]
