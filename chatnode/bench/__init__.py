"""The benchmark: a load generator for a real node, with a printed report.

`scripts/bench SCENARIO` (or `python -m chatnode.bench`) starts a node of its own on a temporary
data directory, or drives a running one (`--url`), from separate load processes so that the
generator is not what is measured. Every scenario checks what it measured (nothing lost, nothing
twice, no gap in seqs, the right final markers) and fails the run otherwise, whatever the speed.
"""
