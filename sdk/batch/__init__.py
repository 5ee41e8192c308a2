"""Batch: the runtime's pipelines over recording archives, in-process or on Ray (``affectedge batch``).

::

    from affectedge import batch

    summary = batch.run_batch("recordings/", batch.BatchOptions(out="results/", ray="local", workers=2))

Per input file a JSONL in the runtime's schema, one Parquet table of every
window, and a summary; resumable and with nothing lost (see
:mod:`affectedge.batch._job`). Ray is optional: ``pip install
'affectedge[batch]'``, or ``ray="none"`` for one worker in this process.
"""

from ._inputs import Item, discover
from ._job import BatchOptions, run_batch
from ._worker import BatchWorker

__all__ = ["BatchOptions", "BatchWorker", "Item", "discover", "run_batch"]
