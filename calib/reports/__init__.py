"""Reports (plots and summaries) of fits."""
