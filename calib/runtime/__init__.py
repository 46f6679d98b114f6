"""What every command run shares: the chip connection, the Dask cluster, progress
display, the running command (provenance), the output guard and the installation check."""
