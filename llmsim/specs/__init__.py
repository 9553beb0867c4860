"""Specs: what is being served (model), on what (GPU) and how it is split (parallelism). Pure data, validated."""

from llmsim.specs.hardware import GpuSpec, LinkSpec, builtin_hardware_names, load_hardware
from llmsim.specs.model import BUILTIN_MODELS, DTYPE_BYTES, ModelSpec, load_model
from llmsim.specs.parallelism import Parallelism

__all__ = ["BUILTIN_MODELS", "DTYPE_BYTES", "GpuSpec", "LinkSpec", "ModelSpec", "Parallelism",
           "builtin_hardware_names", "load_hardware", "load_model"]
