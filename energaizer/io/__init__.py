"""Reading and writing the project's file formats (workload CSV, measurement CSV)."""
