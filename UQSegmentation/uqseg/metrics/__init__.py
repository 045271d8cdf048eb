"""Metrics used by the tasks, the training recipes and the tests (one implementation each).

- `overlap`: `dice`, `dice_per_class`;
- `ranking`: `auroc` (Mann–Whitney, ties ½), `spearman` (average ranks for ties), `average_ranks`;
- `information`: `entropy` (nats, numpy or torch);
- `calibration`: NLL, ECE / MCE with reliability diagrams, error-vs-uncertainty binning (MoB paper, Table 4 / Fig. 3).
"""

from uqseg.metrics.information import entropy
from uqseg.metrics.overlap import dice, dice_per_class
from uqseg.metrics.ranking import auroc, average_ranks, spearman

__all__ = ["auroc", "average_ranks", "dice", "dice_per_class", "entropy", "spearman"]
