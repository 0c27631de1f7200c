"""File formats: STAR tables, MRC volumes and atomic writes."""
