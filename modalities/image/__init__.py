"""The ``image`` modality: domain, datasets (folder, faces, digits), metrics, PNG output, FID."""
from . import datasets, domain, fid, metrics, render  # noqa: F401  (importing registers the parts)
from .domain import ImageDomain, ImageDomainConfig
from .fid import compute_fid, frechet_distance

__all__ = ["ImageDomain", "ImageDomainConfig", "compute_fid", "frechet_distance"]
