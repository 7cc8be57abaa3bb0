"""A study: run folders -> atlas renders, similarity to iteration 0 and between runs, dataset examples, spatial
scale -> one static website with a page per unit (run/layer/channel) and per layer. Orchestration only: the
work is done by lucidtl.atlas, lucidtl.analysis and lucidtl.train.run. CLI: python -m lucidtl.study."""
from lucidtl.study.pipeline import study

__all__ = ["study"]
