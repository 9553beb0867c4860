"""llmsim: a discrete-event simulator of LLM serving on modelled GPUs."""

__version__ = "0.1.0"
