"""Reports: ticket counts, response times, volume and agent figures, computed in SQL."""
