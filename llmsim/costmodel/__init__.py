"""The cost model: pure functions that price engine iterations on a modelled GPU. Imports no simulation code.

Read ``batch.py`` (what an iteration computes), ``operators.py`` (FLOPs and bytes per operator),
``roofline.py`` (the pricing), ``efficiency.py`` (calibrated efficiency curves), ``engine.py`` (host
overhead) and ``memory.py`` (how much KV cache fits).
"""

from llmsim.costmodel.batch import BatchFeatures, IterationShape, PromptChunk, parse_chunk, parse_decodes
from llmsim.costmodel.efficiency import DATASHEET, DEFAULT, CalibrationProfile, Curve, Table2D, load_calibration
from llmsim.costmodel.engine import CUDA_GRAPHS, EngineProfile, HostTerms, load_engine
from llmsim.costmodel.memory import MemoryPlan, plan_memory
from llmsim.costmodel.operators import Precision
from llmsim.costmodel.roofline import CostModel, IterationCost, OpCost, breakdown_table, time_by_operator

__all__ = ["BatchFeatures", "CUDA_GRAPHS", "CalibrationProfile", "CostModel", "Curve", "DATASHEET", "DEFAULT",
           "EngineProfile", "HostTerms", "IterationCost", "IterationShape", "MemoryPlan", "OpCost", "Precision",
           "PromptChunk", "Table2D", "breakdown_table", "load_calibration", "load_engine", "parse_chunk",
           "parse_decodes", "plan_memory", "time_by_operator"]
