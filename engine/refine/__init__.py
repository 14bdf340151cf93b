"""Job and result files, the refinement problem, its objective terms, optimizer and metrics."""
