"""Shape datasets read where users keep them: voxel tensors (GASP layout) and mesh trees
(OBJ/PLY/OFF/STL/GLB/glTF, read by ``meshfiles``).

Items are float32 ``(1, R, R, R)`` occupancies in {0, 1} at the domain's resolution, axes
(x, y, z). Files are found recursively (links followed, each real folder once) and sorted by
relative path; hidden entries, prepared caches and folders inrkit wrote (runs, output folders,
whose sampled meshes are not data) are passed over. Files are read lazily, item by item.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pydantic
import torch
from torch.utils.data import Dataset

from inrkit.errors import DataError
from inrkit.registry import datasets

from ..common import SplitFields, select_split, walk_data
from .meshfiles import MESH_EXTENSIONS, MESH_FORMATS, _first_line, check_mesh_file, read_mesh
from .voxelize import normalise_mesh, resample, voxelize_mesh

VOXEL_EXTENSIONS = (".pt", ".npy")
# bump when voxelisation changes, so that stale cached voxels are not reused
# (2: meshes with holes are filled by the generalized winding number)
_VOXELIZER_VERSION = 2
# meshes with holes announced one by one (as warnings) per dataset; the rest are only listed in its meta
_OPEN_NOTES = 5


class OpenMeshWarning(UserWarning):
    """A mesh is not watertight: its inside comes from the generalized winding number."""


def _find(root: Path, exts: tuple[str, ...]) -> list[Path]:
    """Files with one of ``exts`` under ``root``, by relative path; hidden entries, inrkit's own run
    and output folders (their sampled meshes are not data) and prepared caches passed over."""
    root = Path(root)
    found = []
    for here, _, filenames in walk_data(root):
        found += [here / f for f in filenames if Path(f).suffix.lower() in exts and (here / f).is_file()]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def find_voxel_files(root: Path) -> list[Path]:
    return _find(root, VOXEL_EXTENSIONS)


def find_mesh_files(root: Path) -> list[Path]:
    return _find(root, MESH_EXTENSIONS)


def _open_root(path: str, what: str) -> Path:
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{what} does not exist: {root}")
    if not root.is_dir():
        raise DataError(f"{root}: expected a folder of {what}s, got a file")
    return root


class VoxelFolderConfig(SplitFields):
    path: str
    axes: str = pydantic.Field("xyz", description="what the files' three axes hold, e.g. 'xzy' for binvox-style data")

    @pydantic.field_validator("axes")
    @classmethod
    def _permutation(cls, v: str) -> str:
        if sorted(v.lower()) != ["x", "y", "z"]:
            raise ValueError("must be a permutation of 'xyz'")
        return v.lower()


def read_voxel_file(path: Path) -> np.ndarray:
    """A ``.npy``/``.pt`` voxel tensor (R, R, R) or (1, R, R, R) → (R, R, R) bool."""
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                if len(obj) != 1:
                    raise DataError(f"{path}: holds a dict with keys {sorted(map(str, obj))}; expected one voxel tensor")
                obj = next(iter(obj.values()))
            if not isinstance(obj, torch.Tensor):
                raise DataError(f"{path}: holds a {type(obj).__name__}; expected a voxel tensor")
            arr = obj.detach().numpy()
    except DataError:
        raise
    except Exception as err:  # numpy and torch raise many types for corrupt files
        raise DataError(f"{path}: unreadable voxel file ({_first_line(err)})") from None
    return as_occupancy(arr, path)


def as_occupancy(arr: np.ndarray, path: Path) -> np.ndarray:
    shape = tuple(arr.shape)
    if arr.ndim == 4 and shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or len(set(arr.shape)) != 1:
        raise DataError(f"{path}: voxel tensor of shape {shape}; expected (R, R, R) or (1, R, R, R)")
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        return arr != 0
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{path}: voxel tensor of dtype {arr.dtype}; expected bool, integer or float occupancies")
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise DataError(f"{path}: the voxel tensor holds {bad} non-finite value(s) (NaN or inf)")
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if lo < 0 or hi > 1:
        raise DataError(f"{path}: voxel values span [{lo:g}, {hi:g}]; expected occupancies in [0, 1]")
    return arr > 0.5


@datasets.register("voxel_folder", config=VoxelFolderConfig, description="a folder of .pt/.npy voxel grids (GASP layout), resampled to the domain")
class VoxelFolder(Dataset):
    """Voxel grids of any cubic size: shrunk by max-pooling, grown by nearest neighbour."""

    def __init__(self, config: VoxelFolderConfig, domain):
        self.config, self.domain = config, domain
        root = _open_root(config.path, "voxel folder")
        found = find_voxel_files(root)
        if not found:
            raise DataError(f"{root}: no voxel tensors ({', '.join(VOXEL_EXTENSIONS)}) found in this folder")
        # .npy headers are cheap to check up front; .pt files are checked when read
        for f in found:
            if f.suffix.lower() == ".npy":
                self._check_header(f)
        self.files = [found[i] for i in select_split(len(found), config)]
        self.root = root
        self.perm = tuple("xyz".index(a) for a in config.axes)
        self.source_resolution = self._load(self.files[0]).shape[0]  # a wrong kind of folder fails now
        self.meta = {
            "source": str(root),
            "format": "voxel tensors (.pt/.npy)",
            "split": config.split,
            "n_items": len(self.files),
            "source_resolution": int(self.source_resolution),
            "resolution": int(domain.grid_shape[0]),
            "resampling": "max-pool by an integer factor when shrinking, nearest otherwise",
            "axes": config.axes,
        }

    @staticmethod
    def _check_header(path: Path) -> None:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as err:
            raise DataError(f"{path}: unreadable voxel file ({_first_line(err)})") from None
        shape = tuple(arr.shape)
        cubic = len(shape) == 3 or (len(shape) == 4 and shape[0] == 1)
        if not cubic or len(set(shape[-3:])) != 1:
            raise DataError(f"{path}: voxel tensor of shape {shape}; expected (R, R, R) or (1, R, R, R)")

    def _load(self, path: Path) -> np.ndarray:
        vol = read_voxel_file(path)
        # invert the file's axis labelling so that the result is indexed (x, y, z)
        vol = np.transpose(vol, np.argsort(self.perm)) if self.perm != (0, 1, 2) else vol
        return vol

    def __len__(self) -> int:
        return len(self.files)

    def item_labels(self, indices) -> list[str]:
        return [self.files[i].name for i in indices]

    def __getitem__(self, i: int) -> torch.Tensor:
        vol = resample(self._load(self.files[i]), self.domain.grid_shape[0])
        return torch.from_numpy(np.ascontiguousarray(vol, dtype=np.float32))[None]


class MeshFolderConfig(SplitFields):
    path: str
    cache_dir: str | None = pydantic.Field(
        None, description="where voxelised meshes are kept (default: the user cache directory, never the mesh folder)")
    margin: float = pydantic.Field(0.05, ge=0.0, lt=0.5, description="gap left around the normalised mesh, as a fraction of the half-side")


def _user_cache_root() -> Path:
    """The per-user cache (platformdirs: $XDG_CACHE_HOME/inrkit on Linux, ~/Library/Caches on macOS...)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("inrkit", appauthor=False)) / "voxels"


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
        return True
    except OSError:
        return False


@datasets.register("mesh_folder", config=MeshFolderConfig,
                   description="a folder tree of OBJ/PLY/OFF/STL/GLB/glTF meshes, voxelised on the fly (cached)")
class MeshFolder(Dataset):
    """Meshes normalised into [-1, 1]^3 (bounding-box centre, longest side) and voxelised.

    Watertight meshes: exact centre-inside test; meshes with holes: the centre's generalized
    winding number exceeds 1/2. Each result is cached as ``.npy``, keyed by the file's path, size,
    mtime and the margin; a mesh found not watertight also leaves a ``.open`` marker beside it, so
    that ``meta["not_watertight"]`` lists it in later runs too.
    """

    def __init__(self, config: MeshFolderConfig, domain):
        self.config, self.domain = config, domain
        root = _open_root(config.path, "mesh folder")
        found = find_mesh_files(root)
        if not found:
            raise DataError(f"{root}: no meshes ({', '.join(MESH_EXTENSIONS)}) found in this folder")
        for f in found:  # cheap header checks: a point cloud fails now, not in the middle of training
            check_mesh_file(f)
        self.root = root
        self.files = [found[i] for i in select_split(len(found), config)]
        R = int(domain.grid_shape[0])
        # never inside the user's dataset folder (it may be read-only or shared): a folder of one's
        # own (data.cache_dir, --cache), else the user cache, keyed by the dataset's absolute path
        key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
        default = _user_cache_root() / f"{root.name}-{key}" / str(R)
        wanted = Path(config.cache_dir).expanduser() / str(R) if config.cache_dir else default
        if _writable_dir(wanted):
            self.cache_dir = wanted
        else:
            self.cache_dir = default
            if not _writable_dir(self.cache_dir):
                raise DataError(f"cannot write voxel cache: neither {wanted} nor {self.cache_dir} is writable")
        self.meta = {
            "source": str(root),
            "format": f"meshes ({MESH_FORMATS}), voxelised",
            "split": config.split,
            "n_items": len(self.files),
            "resolution": R,
            "normalisation": f"bounding-box centre at 0, longest side 2*(1-{config.margin})",
            "voxelisation": ("voxel centre inside (watertight meshes); generalized winding number of the centre > 1/2"
                             " (meshes with holes, listed under not_watertight once voxelised)"),
            "not_watertight": [],
            "cache_dir": str(self.cache_dir),
            "conversion": (f"{len(self.files)} meshes are centred on their bounding box, scaled to a longest side of"
                           f" {2 * (1 - config.margin):g} in [-1, 1]^3 and voxelised to {R}^3 occupancies (meshes with"
                           " holes: by their generalized winding number); change with --set model.domain.resolution=N"),
        }
        self._open_noted = 0
        for f in self.files:
            if self.cache_path(f).with_suffix(".open").is_file():
                self._record_open(f, voxelised_now=False)

    def cache_path(self, path: Path) -> Path:
        st = path.stat()
        rel = path.relative_to(self.root).as_posix()
        key = f"{rel}|{st.st_size}|{st.st_mtime_ns}|{self.config.margin}|{_VOXELIZER_VERSION}"
        safe = rel.replace("/", "__")
        return self.cache_dir / f"{safe}.{hashlib.sha1(key.encode()).hexdigest()[:12]}.npy"

    def __len__(self) -> int:
        return len(self.files)

    def item_labels(self, indices) -> list[str]:
        return [self.files[i].name for i in indices]

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.files[i]
        cached = self.cache_path(path)
        vol = None
        if cached.is_file():
            try:
                vol = np.load(cached, allow_pickle=False)
            except Exception:  # a damaged cache entry is rebuilt, never trusted
                vol = None
        if vol is None or vol.shape != tuple(self.domain.grid_shape):
            vol, watertight = self._voxelize(path)
            if not watertight:
                self._record_open(path, voxelised_now=True)
                self._mark(cached.with_suffix(".open"), path)
            self._store(cached, vol)
        return torch.from_numpy(np.ascontiguousarray(vol, dtype=np.float32))[None]

    def item_transforms(self, indices) -> list[tuple[np.ndarray, float]]:
        """Per item, (centre, scale) taking the normalised cube back to the mesh file's own units:
        ``source = cube * scale + centre`` (the inverse of the normalisation, read from the file's bounds)."""
        out = []
        for i in indices:
            lo, hi = read_mesh(self.files[i]).bounds
            out.append(((lo + hi) / 2, float(np.max(hi - lo)) / (2 * (1 - self.config.margin))))
        return out

    def _record_open(self, path: Path, voxelised_now: bool) -> None:
        rel = path.relative_to(self.root).as_posix()
        listed = self.meta["not_watertight"]
        if rel in listed:
            return
        listed.append(rel)
        listed.sort()
        if voxelised_now and self._open_noted < _OPEN_NOTES:
            self._open_noted += 1
            more = ("; further ones are listed, not announced, under not_watertight in the dataset's metadata"
                    if self._open_noted == _OPEN_NOTES else "")
            warnings.warn(f"{path}: mesh is not watertight (holes or open edges): voxelised by its generalized"
                          f" winding number (inside where > 1/2){more}", OpenMeshWarning, stacklevel=3)

    def _voxelize(self, path: Path) -> tuple[np.ndarray, bool]:
        """The occupancy grid and whether the mesh was watertight."""
        mesh = read_mesh(path)
        try:
            mesh = normalise_mesh(mesh, self.config.margin)
        except ValueError as err:
            raise DataError(f"{path}: {err}") from None
        return voxelize_mesh(mesh, int(self.domain.grid_shape[0])), bool(mesh.is_watertight)

    @staticmethod
    def _mark(marker: Path, path: Path) -> None:
        try:
            marker.write_text(f"{path}: not watertight\n")
        except OSError:  # the marker only feeds the metadata of later runs
            pass

    @staticmethod
    def _store(path: Path, vol: np.ndarray) -> None:
        # several DataLoader workers may voxelise the same mesh: write aside, then rename
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, vol.astype(bool))
            os.replace(tmp, path)
        except OSError:
            # the cache only saves time; a full disk must not stop training
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
